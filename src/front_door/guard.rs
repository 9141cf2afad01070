//! The client connection as Pingora sees it, wrapped: [`Guarded`] passes
//! every byte through unchanged and enforces the client limits Pingora has
//! no setting for — a deadline for a whole request header (not per read),
//! an idle deadline between kept-alive requests, and a header size bound.
//! It also notices when a response is written for a request that never
//! reached Tether's proxy (Pingora's own parser refusals) so that those
//! get an access-log line too.
//!
//! A new connection's first request header is read by [`Guarded::read_first_header`]
//! before Pingora is given the connection: until a client has sent a whole
//! header it costs a small buffer, not Pingora's session (measured: about 40
//! KiB a connection otherwise). The bytes read ahead are then served first.
//!
//! HTTP/1 only: a connection that negotiated HTTP/2 (ALPN `h2` on TLS, or
//! a plain connection that opens with the h2c prior-knowledge preface, as
//! gRPC clients do) is passed through untouched (h2 has its own flow control
//! and Pingora its idle handling).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::chunked::{BadChunk, Chunked};
use super::deadline::Deadline;
use super::scan::{h2_preface, response_status, HeaderScan, Preface, Scanned};
use super::{log_refusal, Refusal};
use crate::config::ClientLimits;

/// How a request's body is framed, as the proxy read it from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

const FRAMING_UNKNOWN: u64 = u64::MAX;
const FRAMING_CHUNKED: u64 = u64::MAX - 1;

/// Shared between the connection and the proxy: whether the current request
/// reached Tether's proxy callbacks, and how its body is framed; and, once
/// the connection is upgraded, the signal that closes it
/// ([`RequestMark::close_upgraded`]).
#[derive(Debug)]
pub struct RequestMark {
    reached_proxy: AtomicBool,
    framing: AtomicU64,
    /// Set once: the upgraded connection is to end (its reads end).
    close: AtomicBool,
    /// The task reading an upgraded connection, woken by the close.
    reader: futures_util::task::AtomicWaker,
}

impl Default for RequestMark {
    fn default() -> Self {
        RequestMark {
            reached_proxy: AtomicBool::new(false),
            framing: AtomicU64::new(FRAMING_UNKNOWN),
            close: AtomicBool::new(false),
            reader: futures_util::task::AtomicWaker::new(),
        }
    }
}

impl RequestMark {
    /// Ends an upgraded connection (a WebSocket): its next read from the
    /// client ends as if the client had closed, which ends Pingora's relay
    /// both ways; the reader is woken for it. Any thread, any time; a
    /// connection not (yet) upgraded ignores it.
    /// `true` the first time.
    pub fn close_upgraded(&self) -> bool {
        let first = !self.close.swap(true, Ordering::AcqRel);
        self.reader.wake();
        first
    }
    /// Whether [`RequestMark::close_upgraded`] was called.
    pub fn upgraded_closing(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    pub fn reached_proxy(&self, framing: Framing) {
        let code = match framing {
            Framing::Length(n) => n.min(FRAMING_CHUNKED - 1),
            Framing::Chunked => FRAMING_CHUNKED,
        };
        self.framing.store(code, Ordering::Relaxed);
        self.reached_proxy.store(true, Ordering::Relaxed);
    }
    fn reset(&self) {
        self.reached_proxy.store(false, Ordering::Relaxed);
        self.framing.store(FRAMING_UNKNOWN, Ordering::Relaxed);
    }
    fn seen(&self) -> bool {
        self.reached_proxy.load(Ordering::Relaxed)
    }
    fn framing(&self) -> Option<Framing> {
        match self.framing.load(Ordering::Relaxed) {
            FRAMING_UNKNOWN => None,
            FRAMING_CHUNKED => Some(Framing::Chunked),
            n => Some(Framing::Length(n)),
        }
    }
}

/// The registry of upgraded connections closes one through its mark.
impl crate::state::upgraded::CloseSignal for RequestMark {
    fn close(&self) -> bool {
        self.close_upgraded()
    }
}

/// What is left of the current request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLeft {
    /// The proxy has not said (the request never reached it): every byte
    /// passes as the body's, as Pingora decides.
    Unknown,
    /// Bytes of a `Content-Length` body still to come (0: done).
    Length(u64),
    Chunked(Chunked),
}

impl BodyLeft {
    fn done(&self) -> bool {
        match self {
            BodyLeft::Unknown => false,
            BodyLeft::Length(left) => *left == 0,
            BodyLeft::Chunked(c) => c.done(),
        }
    }

    /// The framing the proxy said (through `mark`), once it has said it.
    fn learn(&mut self, mark: &RequestMark) {
        if *self == BodyLeft::Unknown {
            match mark.framing() {
                None => {}
                Some(Framing::Length(n)) => *self = BodyLeft::Length(n),
                Some(Framing::Chunked) => *self = BodyLeft::Chunked(Chunked::default()),
            }
        }
    }

    /// How many of `data`'s bytes belong to the body.
    fn take(&mut self, data: &[u8], mark: &RequestMark) -> Result<usize, BadChunk> {
        self.learn(mark);
        match self {
            BodyLeft::Unknown => Ok(data.len()),
            BodyLeft::Length(left) => {
                let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Ok(n)
            }
            BodyLeft::Chunked(c) => c.feed(data),
        }
    }
}

/// The I/O error a connection's read fails with when its chunked body is
/// malformed: the proxy finds it under Pingora's error and answers `400`.
#[derive(Debug)]
pub struct InvalidChunk;

impl fmt::Display for InvalidChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chunk-size line without digits (or another malformed chunk)")
    }
}

impl std::error::Error for InvalidChunk {}

/// Where the connection is in its request/response cycle.
#[derive(Debug)]
enum Phase {
    /// Waiting for the first byte of a request.
    Waiting,
    /// Inside a request header.
    Header(HeaderScan),
    /// Header complete: body, upstream, response. No deadline of Tether's.
    /// `responded`: a final response (not `100 Continue`) was written.
    Body { responded: bool, body: BodyLeft },
    /// After `101 Switching Protocols`: bytes pass, no deadline.
    Tunnel,
}

/// A client connection under the front door's limits.
pub struct Guarded {
    inner: Stream,
    limits: ClientLimits,
    phase: Phase,
    deadline: Deadline,
    /// The last complete request header's line (bytes as received), kept
    /// for the log of a refusal written later; empty before the first.
    last_line: Vec<u8>,
    /// A request-line buffer for the next request's scan.
    spare_line: Vec<u8>,
    mark: Arc<RequestMark>,
    client: Option<SocketAddr>,
    /// HTTP/2: no limits of Tether's.
    passthrough: bool,
    /// Waiting for a kept-alive connection's next request (not the first).
    next_request: bool,
    /// The first header, read ahead by [`Guarded::read_first_header`]
    /// (already scanned), served first.
    prefix: bytes::BytesMut,
    /// Bytes read from the client but not yet through the phases: what
    /// followed a header or a body's end in the same read (the body, the
    /// next pipelined request). Each request is handed to Pingora on its
    /// own, so every pipelined request is scanned as the first one is.
    held: bytes::BytesMut,
    /// When the current wait or request header began, for the logs; `None`
    /// for a kept-alive request's header that arrived whole in one read (no
    /// clock is read for it: its header took no time).
    started: Option<std::time::Instant>,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    /// Wraps a freshly accepted connection: its first request header must be
    /// complete within `header_timeout` from now.
    pub fn new(inner: Stream, limits: ClientLimits) -> Guarded {
        let passthrough = matches!(inner.selected_alpn_proto(), Some(ALPN::H2));
        let client = inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned())
            .and_then(|a| a.as_inet().copied());
        let started = crate::clock::tokio_now();
        let mut guarded = Guarded {
            inner,
            limits,
            phase: Phase::Waiting,
            deadline: Deadline::default(),
            last_line: Vec::new(),
            spare_line: Vec::new(),
            mark: Arc::new(RequestMark::default()),
            client,
            passthrough,
            next_request: false,
            prefix: bytes::BytesMut::new(),
            held: bytes::BytesMut::new(),
            started: Some(started.into_std()),
        };
        if !passthrough {
            guarded.deadline.set(started + limits.header_timeout);
        }
        guarded
    }

    /// Whether Pingora should get this connection without a header read ahead
    /// (HTTP/2, negotiated by ALPN).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// Reads the first request's header into a buffer of the guard's own,
    /// within the limits. `Ok` when it is complete (Pingora then reads it
    /// from the buffer); `Err` when the connection is done: the client closed
    /// or never sent a byte in time (nothing to say), or the header was
    /// refused (the reply is written and logged here).
    pub async fn read_first_header(&mut self) -> Result<(), ()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const STEP: usize = 1024;
        loop {
            if self.prefix.capacity() - self.prefix.len() < STEP / 2 {
                self.prefix.reserve(STEP);
            }
            let read = {
                let Guarded {
                    inner,
                    prefix,
                    deadline,
                    ..
                } = self;
                if !deadline.is_set() {
                    return Err(());
                }
                tokio::select! {
                    biased;
                    r = inner.read_buf(prefix) => Some(r),
                    () = deadline.passed_at() => None,
                }
            };
            let refusal = match read {
                Some(Ok(0)) | Some(Err(_)) => {
                    log::debug!(
                        "client {}: closed before sending a whole request header",
                        self.client_text()
                    );
                    return Err(());
                }
                Some(Ok(n)) => {
                    let mut start = self.prefix.len() - n;
                    if !self.next_request
                        && matches!(self.phase, Phase::Waiting)
                        && self.inner.get_ssl_digest().is_none()
                    {
                        // Nothing scanned yet on a plain connection: HTTP/2
                        // with prior knowledge? (On TLS, HTTP/2 is ALPN's:
                        // Pingora reads a preface there as HTTP/1.)
                        match h2_preface(&self.prefix) {
                            Preface::Whole => {
                                self.passthrough = true;
                                self.deadline.clear();
                                return Ok(());
                            }
                            Preface::Partial => continue,
                            Preface::No => start = 0,
                        }
                    }
                    // Taken out for the scan (no copy), put back before Pingora reads it.
                    let prefix = std::mem::take(&mut self.prefix);
                    let scanned = self.on_read(&prefix[start..]);
                    self.prefix = prefix;
                    match scanned {
                        Ok(_) if matches!(self.phase, Phase::Header(_)) => continue,
                        Ok(header_part) => {
                            // What followed the header waits for its turn. Nothing
                            // followed (the usual case): `held` keeps no share of the
                            // prefix's buffer, which is freed once Pingora read it.
                            let rest = self.prefix.split_off(start + header_part);
                            if !rest.is_empty() {
                                self.held = rest;
                            }
                            return Ok(());
                        }
                        Err(refusal) => refusal,
                    }
                }
                None if matches!(self.phase, Phase::Waiting) => {
                    log::debug!(
                        "client {}: closed after waiting {:?} for a request",
                        self.client_text(),
                        self.since_start()
                    );
                    return Err(());
                }
                None => Refusal::HeaderTimeout,
            };
            let line = match &self.phase {
                Phase::Header(scan) => Some(scan.request_line()),
                _ => None,
            };
            let _ = self.inner.write_all(refusal.response()).await;
            let _ = self.inner.flush().await;
            log_refusal(self.client, line.as_ref(), refusal, self.since_start());
            return Err(());
        }
    }

    fn client_text(&self) -> String {
        self.client.map_or("-".into(), |c| c.to_string())
    }

    /// The mark the proxy sets when a request reaches it.
    pub fn mark(&self) -> &Arc<RequestMark> {
        &self.mark
    }

    /// The connection's deadline is `after` from now, which is also when
    /// the current wait or header began.
    fn arm(&mut self, after: Duration) {
        let now = crate::clock::tokio_now();
        self.deadline.set(now + after);
        self.started = Some(now.into_std());
    }

    /// How long the current wait or request header has lasted.
    fn since_start(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |s| s.elapsed())
    }

    fn elapsed(&self) -> bool {
        self.deadline.passed(crate::clock::tokio_now())
    }

    /// Bytes of a read arrived: move through the phases. Returns how many
    /// of them Pingora gets now: all, but where a header or a body ends
    /// inside `data` (the rest is held for the next request).
    fn on_read(&mut self, data: &[u8]) -> Result<usize, Refusal> {
        if matches!(self.phase, Phase::Waiting) {
            self.mark.reset();
            self.phase = Phase::Header(HeaderScan::reusing(std::mem::take(&mut self.spare_line)));
        }
        let scan = match &mut self.phase {
            Phase::Header(scan) => scan,
            Phase::Body { body, .. } => {
                return body
                    .take(data, &self.mark)
                    .map_err(|_| Refusal::InvalidChunk)
            }
            Phase::Waiting | Phase::Tunnel => return Ok(data.len()),
        };
        match scan.feed(data) {
            Scanned::Complete { bytes, .. } if bytes > self.limits.max_request_header_bytes => {
                Err(Refusal::HeaderTooLarge)
            }
            Scanned::Complete { consumed, .. } => {
                let body = Phase::Body {
                    responded: false,
                    body: BodyLeft::Unknown,
                };
                if let Phase::Header(scan) = std::mem::replace(&mut self.phase, body) {
                    self.spare_line = std::mem::replace(&mut self.last_line, scan.into_line());
                }
                self.deadline.clear();
                Ok(consumed)
            }
            Scanned::Partial { bytes } if bytes > self.limits.max_request_header_bytes => {
                Err(Refusal::HeaderTooLarge)
            }
            Scanned::Partial { .. } if !self.deadline.is_set() => {
                // A kept-alive connection's next header, not whole in its
                // first read: `header_timeout` from that read.
                self.arm(self.limits.header_timeout);
                Ok(data.len())
            }
            Scanned::Partial { .. } if self.elapsed() => Err(Refusal::HeaderTimeout),
            Scanned::Partial { .. } => Ok(data.len()),
            Scanned::InvalidRequestLine => Err(Refusal::InvalidTarget),
        }
    }

    /// Whether the current request is read and answered, so the next read is
    /// the next request's: its response was written and its body (when the
    /// proxy said how it is framed) has ended.
    fn request_over(&mut self) -> bool {
        self.learn_framing();
        matches!(self.phase, Phase::Body { responded: true, body } if body.done() || body == BodyLeft::Unknown)
    }

    /// Whether the current request's body has ended while its response has
    /// not been written: bytes that arrive now are the next request's.
    fn between_requests(&mut self) -> bool {
        self.learn_framing();
        matches!(self.phase, Phase::Body { responded: false, body } if body.done())
    }

    /// The body's framing, once the proxy has said it, before anything is
    /// decided on it: a body Pingora drains after the response (to keep the
    /// connection) is still the body's, not the next request's header.
    fn learn_framing(&mut self) {
        if let Phase::Body { body, .. } = &mut self.phase {
            body.learn(&self.mark);
        }
    }

    /// `rest` (bytes not yet through the phases) goes back in front of `held`.
    fn hold(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            return;
        }
        let mut held = bytes::BytesMut::with_capacity(rest.len() + self.held.len());
        held.extend_from_slice(rest);
        held.extend_from_slice(&self.held);
        self.held = held;
    }

    /// Refuses the request in progress: a best-effort canned response, an
    /// access-log line, and the error Pingora then sees.
    fn refuse(&mut self, cx: &mut Context<'_>, refusal: Refusal) -> io::Error {
        if refusal == Refusal::InvalidChunk {
            // Inside a request the proxy has: it answers (and logs) `400`
            // when it finds this error under Pingora's.
            super::COUNTERS.refusals[refusal.index()].fetch_add(1, Ordering::Relaxed);
            self.phase = Phase::Tunnel;
            self.held.clear();
            return io::Error::new(io::ErrorKind::InvalidData, InvalidChunk);
        }
        let line = match &self.phase {
            Phase::Header(scan) => Some(scan.request_line()),
            _ => None,
        };
        let response = refusal.response();
        // One attempt: a small reply to a socket that is reading; if it would
        // block, the client gets the close alone.
        if let Poll::Ready(Ok(n)) = Pin::new(&mut self.inner).poll_write(cx, response) {
            if n == response.len() {
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
        }
        log_refusal(self.client, line.as_ref(), refusal, self.since_start());
        self.phase = Phase::Tunnel;
        self.deadline.clear();
        io::Error::new(refusal.io_kind(), refusal.reason())
    }

    /// After `101 Switching Protocols` no request header comes again: what
    /// was kept for the next one (request-line buffers, the timer) is freed,
    /// as an upgraded connection (a WebSocket) may stay open for hours.
    fn enter_tunnel(&mut self) {
        self.last_line = Vec::new();
        self.spare_line = Vec::new();
        self.deadline = Deadline::default();
        if self.held.is_empty() {
            self.held = bytes::BytesMut::new();
        }
    }

    /// A response is being written: note it, and log it when it refuses a
    /// request that never reached the proxy (Pingora's own 400s).
    fn on_write(&mut self, data: &[u8]) {
        let status = match self.phase {
            Phase::Header(_)
            | Phase::Body {
                responded: false, ..
            } => response_status(data),
            _ => None,
        };
        if let Some(status) = status {
            if status >= 400 && !self.mark.seen() {
                let line = match &self.phase {
                    Phase::Header(scan) => Some(scan.request_line()),
                    _ if self.last_line.is_empty() => None,
                    _ => Some(super::scan::RequestLine::parse(&self.last_line)),
                };
                log_refusal(
                    self.client,
                    line.as_ref(),
                    Refusal::Parser(status),
                    self.since_start(),
                );
            }
            self.phase = match (status, &self.phase) {
                (101, _) => {
                    self.enter_tunnel();
                    Phase::Tunnel
                }
                // `100 Continue` and the like: the request's body is still to come.
                (100..=199, _) => return,
                (_, Phase::Body { body, .. }) => Phase::Body {
                    responded: true,
                    body: *body,
                },
                _ => Phase::Body {
                    responded: true,
                    body: BodyLeft::Unknown,
                },
            };
            self.deadline.clear();
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            // The header read ahead: already scanned.
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            if this.prefix.is_empty() {
                this.prefix = bytes::BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        if this.passthrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.request_over() {
            // The response went out: the connection now waits for the next request.
            this.phase = Phase::Waiting;
            this.next_request = true;
            this.arm(this.limits.idle_timeout);
        }
        if this.between_requests() {
            return this.poll_hold(cx);
        }
        if matches!(this.phase, Phase::Tunnel) && this.held.is_empty() {
            // Upgraded: the reader registers for the close signal first, so
            // a close set after the check below still wakes it.
            this.mark.reader.register(cx.waker());
            if this.mark.upgraded_closing() {
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        if !this.held.is_empty() {
            // Bytes that arrived with an earlier request: they go through
            // the phases now, as if just read.
            let n = this.held.len().min(buf.remaining());
            buf.put_slice(&this.held.split_to(n));
            if this.held.is_empty() {
                // Its buffer is not kept for a connection that may stay open for hours.
                this.held = bytes::BytesMut::new();
            }
        } else {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Pending => {
                    if this.deadline.poll_passed(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return match this.phase {
                        // Nothing of a request yet: close quietly, as NGINX does.
                        Phase::Waiting => {
                            this.deadline.clear();
                            log::debug!(
                                "client {}: closed after waiting {:?} for a request",
                                this.client_text(),
                                this.since_start()
                            );
                            Poll::Ready(Ok(()))
                        }
                        Phase::Header(_) => {
                            Poll::Ready(Err(this.refuse(cx, Refusal::HeaderTimeout)))
                        }
                        _ => Poll::Pending,
                    };
                }
                other => return other,
            }
        }
        if this.next_request && matches!(this.phase, Phase::Waiting) {
            // A kept-alive connection's next request: the idle wait
            // is over, and its header has `header_timeout` from its
            // first byte, armed only if this read does not complete
            // it (`on_read`: one clock read saved per request).
            this.next_request = false;
            this.deadline.clear();
            this.started = None;
        }
        let got = buf.filled().len() - before;
        let data = &buf.filled()[before..];
        match this.on_read(data) {
            Ok(n) if n == got => Poll::Ready(Ok(())),
            Ok(n) => {
                // A header or a body ended inside this read: the rest is the
                // next request's, and waits for it.
                this.hold(&data[n..]);
                buf.set_filled(before + n);
                if n == 0 {
                    // Nothing of this read is the current request's.
                    return this.poll_hold(cx);
                }
                Poll::Ready(Ok(()))
            }
            Err(refusal) => {
                buf.set_filled(before);
                Poll::Ready(Err(this.refuse(cx, refusal)))
            }
        }
    }
}

impl Guarded {
    /// A read while the current request's body has ended and its response
    /// is not written yet (Pingora watches the client for a close). What the
    /// client sends now is kept for the next request, up to
    /// `max_request_header_bytes`; a close is passed on.
    fn poll_hold(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 4096];
        while self.held.len() < self.limits.max_request_header_bytes {
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => self.held.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Enough kept: wait for the response (its write moves things on).
        Poll::Pending
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.passthrough {
            this.on_write(buf);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.passthrough {
            if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
                this.on_write(first);
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for Guarded {
    /// The bytes read ahead, when there are (Pingora peeks for the h2c
    /// preface before it reads: it finds it only where
    /// [`Guarded::read_first_header`] saw it; an HTTP/1 header shorter than
    /// `buf` leaves the rest as the caller had it).
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.prefix.is_empty() {
            return self.inner.try_peek(buf).await;
        }
        let n = self.prefix.len().min(buf.len());
        buf[..n].copy_from_slice(&self.prefix[..n]);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A guarded server side and its client, over loopback TCP.
    async fn pair() -> (Guarded, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        (Guarded::new(stream, ClientLimits::default()), client)
    }

    #[tokio::test]
    async fn the_close_signal_ends_an_upgraded_connections_reads() {
        let (mut guarded, mut client) = pair().await;
        client
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            )
            .await
            .unwrap();
        guarded.read_first_header().await.unwrap();
        let mut header = vec![0u8; 256];
        let n = guarded.read(&mut header).await.unwrap();
        assert!(header[..n].starts_with(b"GET /ws"));
        guarded
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        // Upgraded: bytes pass both ways.
        client.write_all(b"frame").await.unwrap();
        let mut buf = [0u8; 16];
        let n = guarded.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"frame");

        // A read waiting for the client ends (EOF) when the signal comes.
        let mark = Arc::clone(guarded.mark());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            guarded.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "nothing to read yet");
        mark.close_upgraded();
        let read = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the close wakes the reader")
            .unwrap();
        assert_eq!(read.unwrap(), 0, "EOF");
    }

    #[tokio::test]
    async fn the_close_signal_leaves_a_connection_that_is_not_upgraded_alone() {
        let (mut guarded, mut client) = pair().await;
        guarded.mark().close_upgraded();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        guarded.read_first_header().await.unwrap();
        let mut header = vec![0u8; 256];
        let n = guarded.read(&mut header).await.unwrap();
        assert!(header[..n].starts_with(b"GET / "), "the request is read");
    }

    #[tokio::test]
    async fn an_upgraded_connection_keeps_no_buffer_of_the_guard() {
        let (mut guarded, mut client) = pair().await;
        let request =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        client.write_all(request).await.unwrap();
        guarded.read_first_header().await.unwrap();
        let mut got = vec![0u8; 4096];
        let n = guarded.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], request);

        let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        guarded.write_all(response).await.unwrap();
        guarded.flush().await.unwrap();
        assert!(matches!(guarded.phase, Phase::Tunnel));
        // Nothing read ahead or kept for a next request outlives the header.
        assert_eq!(guarded.prefix.capacity(), 0);
        assert_eq!(guarded.held.capacity(), 0);
        assert_eq!(guarded.last_line.capacity(), 0);
        assert_eq!(guarded.spare_line.capacity(), 0);
        assert!(!guarded.deadline.is_set());

        // The tunnel still passes bytes both ways.
        client.write_all(b"frame one").await.unwrap();
        let n = guarded.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"frame one");
        guarded.write_all(b"frame two").await.unwrap();
        guarded.flush().await.unwrap();
        let mut back = vec![0u8; response.len() + 9];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back[response.len()..], b"frame two");
    }

    #[tokio::test]
    async fn bytes_after_the_first_header_are_still_served_in_order() {
        let (mut guarded, mut client) = pair().await;
        let first = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
        let mut sent = first.to_vec();
        sent.extend_from_slice(b"body");
        client.write_all(&sent).await.unwrap();
        guarded.read_first_header().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        for _ in 0..10 {
            if got.len() >= sent.len() {
                break;
            }
            let n = guarded.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, sent);
        assert_eq!(
            guarded.held.capacity(),
            0,
            "the rest's buffer is freed once served"
        );
    }
}
