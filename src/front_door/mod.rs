//! The front door: what happens to a client connection before and around
//! Pingora's HTTP handling. [`FrontDoor`] wraps the proxy's Pingora app (and
//! the admin API's, with a [`Tally`] of its own):
//!
//! - it counts open client connections and closes new ones at once past
//!   `client_limits.max_connections`;
//! - it reads each new connection's first request header itself, into a
//!   small buffer, and hands Pingora the connection only once the header is
//!   complete: a client that holds a connection with half a header costs a
//!   few KiB, not Pingora's session;
//! - it wraps each connection in a [`guard::Guarded`] stream that enforces
//!   `header_timeout` (the whole header, not per read: a client trickling
//!   one byte at a time is answered `408`), `idle_timeout` between
//!   kept-alive requests, and `max_request_header_bytes` (`431`);
//! - every refusal, its own or Pingora's parser's, gets an access-log line
//!   and a count in `tether_client_refusals_total`;
//! - its shutdown clean-up is deferred by [`LINGER`]: when the accept loop
//!   ends (after SIGQUIT, once the sockets went to the new process; after
//!   SIGTERM at once), Pingora drops every connection waiting for a request,
//!   including one accepted a moment earlier whose request had not arrived
//!   yet. Deferring the clean-up lets those through (measured by
//!   `tests/upgrade.rs`: 1-2 lost requests per upgrade without it).
//!
//! The limits can change at run time (a reload): they are read per connection.

pub mod body;
pub mod certificates;
pub mod chunked;
mod deadline;
pub mod guard;
pub mod scan;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::warn;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::config::ClientLimits;
use guard::Guarded;
use scan::RequestLine;

/// How long client connections are still served after the accept loop ended. It runs
/// inside Pingora's `grace_period_seconds` (and `graceful_shutdown_timeout_seconds`).
pub const LINGER: Duration = Duration::from_secs(1);

/// At most one "too many connections" log line per this long.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a client's request was refused before it reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header did not complete within `header_timeout`: 408.
    HeaderTimeout,
    /// The header grew past `max_request_header_bytes`: 431.
    HeaderTooLarge,
    /// The request target holds a byte no target may (a space, a control
    /// character, non-ASCII, a fragment): 400 (`scan::Scanned::InvalidRequestLine`).
    InvalidTarget,
    /// A chunked body with a chunk-size line without digits: 400, answered
    /// by the proxy (`chunked`).
    InvalidChunk,
    /// Pingora's HTTP parser refused it with this status.
    Parser(u16),
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::HeaderTimeout => 408,
            Refusal::HeaderTooLarge => 431,
            Refusal::InvalidTarget | Refusal::InvalidChunk => 400,
            Refusal::Parser(status) => status,
        }
    }

    /// The `reason` label and log field.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::HeaderTooLarge => "header_too_large",
            Refusal::InvalidTarget => "invalid_target",
            Refusal::InvalidChunk => "invalid_chunk",
            Refusal::Parser(_) => "invalid_request",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Refusal::HeaderTimeout => 0,
            Refusal::HeaderTooLarge => 1,
            Refusal::Parser(_) => 2,
            Refusal::InvalidTarget => 3,
            Refusal::InvalidChunk => 4,
        }
    }

    /// The reply the front door writes itself (never for `Parser`: Pingora did).
    fn response(self) -> &'static [u8] {
        match self {
            Refusal::HeaderTimeout => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\nConnection: close\r\n\r\nthe request header took too long\n",
            Refusal::HeaderTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nConnection: close\r\n\r\nthe request header is too large\n",
            Refusal::InvalidTarget => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 45\r\nConnection: close\r\n\r\nbad request: the request target is not valid\n",
            Refusal::Parser(_) | Refusal::InvalidChunk => b"",
        }
    }

    fn io_kind(self) -> std::io::ErrorKind {
        match self {
            Refusal::HeaderTimeout => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::InvalidData,
        }
    }
}

/// Every refusal reason, in the order of [`Counters::refusals`].
pub const REFUSALS: [Refusal; 5] = [
    Refusal::HeaderTimeout,
    Refusal::HeaderTooLarge,
    Refusal::Parser(400),
    Refusal::InvalidTarget,
    Refusal::InvalidChunk,
];

/// The front door's counts, read by `GET /metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client connections open now.
    pub open: AtomicUsize,
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// Requests refused before the proxy, by [`REFUSALS`] order.
    pub refusals: [AtomicU64; 5],
}

/// The process's front-door counters.
pub static COUNTERS: Counters = Counters {
    open: AtomicUsize::new(0),
    refused_connections: AtomicU64::new(0),
    refusals: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
};

/// One access-log line (and a count) for a request refused at the front door.
fn log_refusal(
    client: Option<SocketAddr>,
    line: Option<&RequestLine>,
    refusal: Refusal,
    elapsed: Duration,
) {
    COUNTERS.refusals[refusal.index()].fetch_add(1, Relaxed);
    let (method, path) = line.map_or(("-", "-"), |l| (l.method.as_str(), l.target.as_str()));
    crate::access_log::log(&crate::access_log::Record {
        unix_ms: crate::clock::unix_ms(),
        client: client.map(|c| c.ip()),
        method,
        path,
        status: refusal.status(),
        affinity: "none",
        total_time: elapsed,
        reason: Some(refusal.reason()),
        ..crate::access_log::Record::default()
    });
}

/// A Pingora app behind the front door: the proxy's, and the admin API's.
pub struct FrontDoor<A> {
    inner: Arc<A>,
    limits: Arc<ArcSwap<ClientLimits>>,
    /// The connections counted against this door's `max_connections`.
    tally: &'static Tally,
    /// When the last "too many connections" line was logged (ms since start).
    last_refusal_log: crate::logging::Throttle,
    started: std::time::Instant,
}

/// One front door's open and refused connections. Each listening service
/// has its own, so a flood on one does not close the other's connections.
#[derive(Debug)]
pub struct Tally {
    /// Its name in the log (`client_limits.max_connections` for the proxy).
    pub name: &'static str,
    pub open: &'static AtomicUsize,
    pub refused: &'static AtomicU64,
}

/// The proxy's connections: [`COUNTERS`], shown by `GET /metrics`.
pub static PROXY_TALLY: Tally = Tally {
    name: "client_limits.max_connections",
    open: &COUNTERS.open,
    refused: &COUNTERS.refused_connections,
};

impl<A> FrontDoor<A> {
    /// The proxy's front door, counting in [`PROXY_TALLY`].
    pub fn new(inner: A, limits: Arc<ArcSwap<ClientLimits>>) -> FrontDoor<A> {
        FrontDoor::counting_in(inner, limits, &PROXY_TALLY)
    }

    /// A front door counting its connections in `tally`.
    pub fn counting_in(
        inner: A,
        limits: Arc<ArcSwap<ClientLimits>>,
        tally: &'static Tally,
    ) -> FrontDoor<A> {
        FrontDoor {
            inner: Arc::new(inner),
            limits,
            tally,
            last_refusal_log: crate::logging::Throttle::new(),
            started: crate::clock::stopwatch(),
        }
    }

    fn log_refused_connection(&self, open: usize, max: usize) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let every = REFUSED_LOG_EVERY.as_millis() as u64;
        if self.last_refusal_log.due(now, every) {
            let refused = self.tally.refused.load(Relaxed);
            let name = self.tally.name;
            warn!("{name} ({max}) reached with {open} open: new connections are closed at once ({refused} so far)");
        }
    }
}

/// An open client connection, counted until dropped.
struct Open(&'static AtomicUsize);

impl Open {
    fn new(count: &'static AtomicUsize) -> (Open, usize) {
        (Open(count), count.fetch_add(1, Relaxed) + 1)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for FrontDoor<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = **self.limits.load();
        let (_open, open) = Open::new(self.tally.open);
        if open > limits.max_connections {
            self.tally.refused.fetch_add(1, Relaxed);
            self.log_refused_connection(open - 1, limits.max_connections);
            return None;
        }
        // Boxed now, not when handed over: this future (alive as long as the
        // connection) then holds a pointer, not the whole guard.
        let mut guarded = Box::new(Guarded::new(stream, limits));
        if !guarded.passthrough() && guarded.read_first_header().await.is_err() {
            return None;
        }
        self.inner.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(LINGER).await;
        self.inner.cleanup().await;
    }
}

/// Tells the connection's front door that its current request reached the
/// proxy (so a refusal written later is not taken for the parser's), and how
/// its body is framed (so the front door knows where the next request starts).
/// Returns that framing.
pub fn reached_proxy(session: &pingora::protocols::http::ServerSession) -> guard::Framing {
    let framing = framing(session.req_header());
    if let Some(mark) = mark_of(session) {
        mark.reached_proxy(framing);
    }
    framing
}

/// The mark the front door shares with the proxy for this client connection,
/// when it guards it (HTTP/1).
pub fn mark_of(
    session: &pingora::protocols::http::ServerSession,
) -> Option<&Arc<guard::RequestMark>> {
    session
        .stream()?
        .as_any()
        .downcast_ref::<Guarded>()
        .map(Guarded::mark)
}

/// How a request's body is framed, as Pingora will read it: chunked when it
/// has `Transfer-Encoding` (Pingora refuses one whose last coding is not
/// chunked, and Tether one that is not exactly `chunked`), else its
/// `Content-Length` (a list of equal values, as Pingora checked), else none.
fn framing(req: &pingora::http::RequestHeader) -> guard::Framing {
    if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return guard::Framing::Chunked;
    }
    let length = req.headers.get(http::header::CONTENT_LENGTH).and_then(|v| {
        let first = v.as_bytes().split(|&b| b == b',').next()?;
        std::str::from_utf8(first).ok()?.trim().parse().ok()
    });
    guard::Framing::Length(length.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_replies_have_the_length_they_say() {
        for refusal in [Refusal::HeaderTimeout, Refusal::HeaderTooLarge] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let declared: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(declared, body.len(), "{text}");
            assert_eq!(
                scan::response_status(refusal.response()),
                Some(refusal.status())
            );
        }
    }
}
