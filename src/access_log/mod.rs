//! The access log, written off the request path. A request's line is
//! formatted where it finished ([`format`], pure) and handed to a bounded
//! queue; one thread of its own (`tether-access-log`, started on the first
//! line, so after Pingora's daemonising fork) wakes every [`FLUSH_EVERY`] and
//! writes what waits in batches to stderr, beside env_logger's lines. It is
//! never woken per line: a request's hand-over is a non-blocking push with no
//! system call (waking a sleeping writer for each line cost more than the
//! line itself, measured in docs/benchmarks.md). A full queue never makes a
//! request wait: the line is dropped and counted
//! (`tether_access_log_dropped_total`).
//!
//! `RUST_LOG` still decides whether there is an access log at all (target
//! `access`, level info); `tether.access_log.format` decides its shape, and a
//! reload changes it for the next line.

pub mod format;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use crate::config::AccessLogFormat;
pub use format::Record;

/// Lines that may wait for the writer; past it, lines are dropped.
pub const QUEUE: usize = 16_384;

/// Write to stderr once this much is gathered, or when the queue is empty.
const BATCH_BYTES: usize = 64 * 1024;

/// How often the writer wakes to drain the queue: a line reaches stderr
/// within this long; [`QUEUE`] lines per period is the most it can take.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// `true`: JSON lines (`tether.access_log.format: json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// Lines dropped because the queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines handed to the writer.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

static QUEUE_TX: OnceLock<Option<SyncSender<String>>> = OnceLock::new();

/// Sets the format of the lines from now on (at start and on reload).
pub fn set_format(format: AccessLogFormat) {
    JSON.store(format == AccessLogFormat::Json, Relaxed);
}

pub fn format() -> AccessLogFormat {
    if JSON.load(Relaxed) {
        AccessLogFormat::Json
    } else {
        AccessLogFormat::Text
    }
}

/// Whether the access log is on (`RUST_LOG`: target `access` at info).
pub fn enabled() -> bool {
    log::log_enabled!(target: "access", log::Level::Info)
}

/// Lines dropped because the writer fell behind by [`QUEUE`] lines.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// Lines queued for the writer so far.
pub fn queued() -> u64 {
    WRITTEN.load(Relaxed)
}

/// Logs one request: formats its line here and queues it; never waits.
pub fn log(record: &Record<'_>) {
    if !enabled() {
        return;
    }
    let mut line = String::with_capacity(320);
    format::write_line(record, format(), &mut line);
    let Some(tx) = QUEUE_TX.get_or_init(start).as_ref() else {
        DROPPED.fetch_add(1, Relaxed);
        return;
    };
    match tx.try_send(line) {
        Ok(()) => {
            WRITTEN.fetch_add(1, Relaxed);
        }
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Starts the writer thread (`None` if the thread cannot be started: every
/// line is then dropped and counted).
fn start() -> Option<SyncSender<String>> {
    let (tx, rx) = sync_channel(QUEUE);
    match std::thread::Builder::new()
        .name("tether-access-log".into())
        .spawn(move || write_loop(rx))
    {
        Ok(_) => Some(tx),
        Err(e) => {
            log::error!("access log: cannot start its writer thread ({e}); lines are dropped");
            None
        }
    }
}

/// Every [`FLUSH_EVERY`]: takes whatever waits, writes it in batches of up
/// to [`BATCH_BYTES`] under stderr's lock (whole lines: never interleaved
/// with env_logger's), and sleeps again. Ends when every sender is gone.
fn write_loop(rx: Receiver<String>) {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES + 4096);
    loop {
        std::thread::sleep(FLUSH_EVERY);
        loop {
            let mut disconnected = false;
            while batch.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(line) => batch.extend_from_slice(line.as_bytes()),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                let stderr = std::io::stderr();
                let mut out = stderr.lock();
                // Nowhere to report a failing stderr; the lines are lost.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
            }
            let full = batch.len() >= BATCH_BYTES;
            batch.clear();
            if disconnected {
                return;
            }
            if !full {
                break;
            }
        }
    }
}
