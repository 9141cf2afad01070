//! The process's logger: env_logger (`RUST_LOG`, default `info`), with one
//! policy of Tether's on top. A client that goes away or is too slow is the
//! client's business, not an operator's: Pingora logs such failures at ERROR
//! ("Fail to proxy: Downstream ConnectionClosed ... while reading request
//! headers", or "failed to send error response to downstream" when the
//! client is gone before its `400`); they are logged at DEBUG here instead.
//! The request itself, when there was one, still gets its access-log line.
//!
//! Nor is a race inside Pingora's connection pool that costs nothing: a
//! pooled upstream connection still held by its idle watcher when a request
//! takes it is dropped and a new connection made, and Pingora logs "failed
//! to acquire reusable stream" at ERROR (`pingora-core-0.9.1/src/connectors/
//! mod.rs:293`) for a request that then succeeds — about 300 lines for 1,000
//! socket.io sessions (docs/realtime.md). It is logged at DEBUG here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use log::{Level, Log, Metadata, Record};

/// Installs the logger. Call once, first thing in `main`.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Policy { inner })).is_ok() {
        log::set_max_level(max);
    }
}

struct Policy {
    inner: env_logger::Logger,
}

impl Log for Policy {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() <= Level::Warn && record.target().starts_with("pingora") {
            let text = record.args().to_string();
            if is_client_gone(&text) || is_pool_race(&text) {
                let demoted = Metadata::builder()
                    .level(Level::Debug)
                    .target(record.target())
                    .build();
                if self.inner.enabled(&demoted) {
                    self.inner.log(
                        &Record::builder()
                            .metadata(demoted)
                            .args(format_args!("{text}"))
                            .module_path(record.module_path())
                            .file(record.file())
                            .line(record.line())
                            .build(),
                    );
                }
                return;
            }
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// A Pingora error line about the client's side of a connection failing:
/// it closed, reset, or was cut off by the front door's limits, also while
/// its `400` was being written (`failed to send error response to
/// downstream`: the write to the client failed).
fn is_client_gone(text: &str) -> bool {
    if text.starts_with("failed to send error response to downstream") {
        return true;
    }
    text.starts_with("Fail to proxy: Downstream")
        && [
            "ConnectionClosed",
            "ReadError",
            "WriteError",
            "ReadTimedout",
            "WriteTimedout",
            "ConnectionReset",
        ]
        .iter()
        .any(|kind| text.contains(kind))
}

/// Pingora's line for a pooled connection it could not take over (a new one
/// is made; the request is not affected).
fn is_pool_race(text: &str) -> bool {
    text == "failed to acquire reusable stream"
}

/// At most one of a kind of log line per interval, across threads (a
/// flood's first line, then one a minute, say). The caller passes the time.
#[derive(Debug, Default)]
pub struct Throttle {
    /// When the last line was let through (ms, at least 1; 0: never).
    last_ms: AtomicU64,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            last_ms: AtomicU64::new(0),
        }
    }

    /// Whether a line is due at `now_ms` (none yet, or `every_ms` since the
    /// last); if so it is claimed, so one thread of several logs it.
    pub fn due(&self, now_ms: u64, every_ms: u64) -> bool {
        let now_ms = now_ms.max(1);
        let last = self.last_ms.load(Relaxed);
        (last == 0 || now_ms.saturating_sub(last) >= every_ms)
            && self
                .last_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_through_per_interval() {
        let t = Throttle::new();
        assert!(t.due(0, 1_000), "the first line, even at time 0");
        assert!(!t.due(999, 1_000));
        assert!(t.due(1_001, 1_000));
        assert!(!t.due(1_500, 1_000));
    }

    #[test]
    fn client_side_failures_are_recognised() {
        assert!(is_client_gone("Fail to proxy: Downstream ConnectionClosed context: while reading request headers, bytes already read: 12, downstream session type: h1"));
        assert!(is_client_gone("Fail to proxy: Downstream ReadError context: while reading request headers cause: header_timeout, downstream session type: h1"));
        assert!(!is_client_gone(
            "Fail to proxy: Upstream ConnectRefused context: x"
        ));
        assert!(is_client_gone(
            "failed to send error response to downstream: Downstream WriteError context: x"
        ));
        assert!(!is_client_gone("failed to build a response: x"));
    }

    #[test]
    fn the_pools_race_is_recognised_and_nothing_else() {
        assert!(is_pool_race("failed to acquire reusable stream"));
        assert!(!is_pool_race("failed to acquire reusable stream: x"));
        assert!(!is_pool_race("Fail to proxy: Upstream ConnectRefused"));
    }
}
