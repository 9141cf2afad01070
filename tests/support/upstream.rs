//! A scriptable HTTP/1.1 upstream for the integration tests and the demo.
//!
//! Shared by `tests/support` and `examples/demo_upstream.rs` (through `#[path]`), so it
//! uses only std, tokio, hyper (+ hyper-util, http-body-util), serde_json and
//! tokio-tungstenite (the WebSocket echo).
//!
//! Each [`Upstream`] runs its server on its OWN thread with its own current-thread tokio
//! runtime, so plain `#[test]` and `#[tokio::test]` callers can both use it. Every
//! method takes `&self`, so an upstream can be stopped while a config borrows it.
//!
//! Behaviour:
//! - `/health` (any method, query ignored): `200 ok` while healthy, `503 unhealthy` after
//!   [`Upstream::set_healthy`]`(false)`; counted by [`Upstream::health_checks`], never
//!   delayed.
//! - `/echo` and `/echo/...` (any method): `200`, `content-type: application/json`, body
//!   `{"upstream", "method", "path" (with query), "headers": {name: [values]}, "body"}`.
//! - `/set-cookie`: as any other path, plus `Set-Cookie: upstream=<name>; Path=/` (to check
//!   that upstream cookies pass through the proxy).
//! - `/ws` with `Upgrade: websocket`: `101`, then a WebSocket that echoes every text and
//!   binary message, answers the text `whoami` with the upstream's name, and closes when
//!   the client does. [`Upstream::websockets_open`] counts the open ones, and
//!   [`Upstream::websockets`] all that were opened.
//! - anything else: `200`, body `<name>`.
//!
//! The fakes a test names its endpoints by: [`Upstream::healthy`], [`Upstream::refusing`]
//! (nothing listens on its port), [`Upstream::black_hole`] (accepts, never answers) and
//! [`Upstream::slow`] (answers after a delay).
//!
//! Every non-health response carries `x-upstream: <name>`, is delayed by
//! [`Upstream::set_delay`], and is counted by [`Upstream::requests`] when it arrives
//! (before the delay, so a request the proxy gave up on still counts).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// The path answered as the health monitor's.
pub const HEALTH_PATH: &str = "/health";

/// How long [`Upstream::restart`] keeps retrying to bind its old port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
const REBIND_INTERVAL: Duration = Duration::from_millis(20);

/// A test HTTP server; see the module documentation for what it answers.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    state: Arc<State>,
    server: Mutex<Option<Server>>,
}

#[derive(Default)]
struct State {
    /// Accept connections and hold them, never reading or answering.
    black_hole: AtomicBool,
    unhealthy: AtomicBool,
    /// Non-health requests answer with this status (0: as usual).
    traffic_status: std::sync::atomic::AtomicU16,
    delay_ms: AtomicU64,
    requests: AtomicU64,
    health_checks: AtomicU64,
    connections: AtomicU64,
    websockets: AtomicU64,
    websockets_open: AtomicU64,
}

/// A running server thread.
struct Server {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Upstream {
    /// Starts an upstream on `127.0.0.1:0` (a free port). Panics if it cannot.
    pub fn start(name: &str) -> Upstream {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    // The named fakes the tests build their endpoints from.

    /// A healthy endpoint: answers every request at once with its name.
    pub fn healthy(name: &str) -> Upstream {
        Self::start(name)
    }

    /// An endpoint whose port refuses connections: nothing listens there (a port that
    /// was bound a moment ago). [`Upstream::restart`] brings it to life on that port.
    pub fn refusing(name: &str) -> Upstream {
        let up = Self::start(name);
        up.stop();
        up
    }

    /// An endpoint that accepts connections and never answers: it holds every
    /// connection without reading from it until stopped ([`Upstream::connections`]
    /// counts them).
    pub fn black_hole(name: &str) -> Upstream {
        let up = Self::start(name);
        up.state.black_hole.store(true, Ordering::SeqCst);
        up
    }

    /// A slow endpoint: answers every non-health request after `delay`
    /// (see [`Upstream::set_delay`]).
    pub fn slow(name: &str, delay: Duration) -> Upstream {
        let up = Self::start(name);
        up.set_delay(delay);
        up
    }

    /// Starts an upstream on `addr`. Panics if it cannot bind.
    pub fn start_on(name: &str, addr: SocketAddr) -> Upstream {
        match Self::try_start_on(name, addr) {
            Ok(up) => up,
            Err(e) => panic!("upstream {name}: cannot listen on {addr}: {e}"),
        }
    }

    /// Starts an upstream on `addr`, reporting a bind failure instead of panicking.
    pub fn try_start_on(name: &str, addr: SocketAddr) -> io::Result<Upstream> {
        let listener = StdTcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let server = spawn_server(name, listener, state.clone())?;
        Ok(Upstream {
            name: name.to_string(),
            addr,
            state,
            server: Mutex::new(Some(server)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://<addr><path>`, to talk to the upstream directly.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `false`: `/health` answers `503 unhealthy` from now on; `true`: `200 ok` again.
    pub fn set_healthy(&self, healthy: bool) {
        self.state.unhealthy.store(!healthy, Ordering::SeqCst);
    }

    /// Every later non-health request is answered with `status` (its body the
    /// upstream's name) while `/health` keeps its own answer; `None`: as usual.
    /// A live-traffic failure the monitor does not see.
    pub fn set_traffic_status(&self, status: Option<u16>) {
        self.state
            .traffic_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    pub fn is_healthy(&self) -> bool {
        !self.state.unhealthy.load(Ordering::SeqCst)
    }

    /// Delays every later non-health response by `delay` (`Duration::ZERO`: no delay).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Non-health requests received since start (survives `stop`/`restart`).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// `/health` requests received since start (survives `stop`/`restart`).
    pub fn health_checks(&self) -> u64 {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// TCP connections accepted since start, monitor connections included (to check that
    /// a proxy reuses kept-alive connections).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// WebSockets opened since start (`GET /ws` upgraded).
    pub fn websockets(&self) -> u64 {
        self.state.websockets.load(Ordering::SeqCst)
    }

    /// WebSockets open now: opened and not yet closed by either side.
    pub fn websockets_open(&self) -> u64 {
        self.state.websockets_open.load(Ordering::SeqCst)
    }

    /// Zeroes the three counters.
    pub fn reset_counters(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.health_checks.store(0, Ordering::SeqCst);
        self.state.connections.store(0, Ordering::SeqCst);
    }

    pub fn is_running(&self) -> bool {
        self.lock_server().is_some()
    }

    /// Stops accepting, closes every open (kept-alive) connection, aborts requests in
    /// progress, closes the listening socket and joins the server thread: afterwards a
    /// connect to [`Upstream::addr`] is refused. No-op when already stopped. Re-raises a
    /// panic of the server thread.
    pub fn stop(&self) {
        let server = self.lock_server().take();
        if let Some(server) = server {
            // The server thread may already be gone if it panicked; join tells.
            let _ = server.stop.send(());
            if let Err(panic) = server.thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }

    /// Serves again on the same address (stopping first if running). Retries the bind
    /// every 20 ms for at most 5 s, then panics.
    pub fn restart(&self) {
        self.stop();
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match StdTcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() >= deadline => panic!(
                    "upstream {}: cannot re-bind {} within {:?}: {e}",
                    self.name, self.addr, REBIND_TIMEOUT
                ),
                Err(_) => std::thread::sleep(REBIND_INTERVAL),
            }
        };
        let server = spawn_server(&self.name, listener, self.state.clone())
            .unwrap_or_else(|e| panic!("upstream {}: cannot restart: {e}", self.name));
        *self.lock_server() = Some(server);
    }

    fn lock_server(&self) -> std::sync::MutexGuard<'_, Option<Server>> {
        // A poisoned lock only means another thread panicked while holding it; the
        // Option inside is still meaningful.
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .finish()
    }
}

fn spawn_server(name: &str, listener: StdTcpListener, state: Arc<State>) -> io::Result<Server> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let name: Arc<str> = Arc::from(name);
    let thread = std::thread::Builder::new()
        .name(format!("upstream-{name}"))
        .spawn(move || runtime.block_on(serve(name, listener, state, stop_rx)))?;
    Ok(Server {
        stop: stop_tx,
        thread,
    })
}

/// Accepts until `stop` fires (or its sender is dropped), then drops the listener and
/// aborts every connection task.
async fn serve(
    name: Arc<str>,
    listener: StdTcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener)
        .unwrap_or_else(|e| panic!("upstream {name}: cannot register listener: {e}"));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    if state.black_hole.load(Ordering::SeqCst) {
                        // Held, unread, until the server stops (which aborts the task).
                        connections.spawn(async move {
                            let _held = stream;
                            std::future::pending::<()>().await
                        });
                    } else {
                        connections.spawn(serve_connection(stream, name.clone(), state.clone()));
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: report, back off, keep serving.
                    eprintln!("upstream {name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: tokio::net::TcpStream, name: Arc<str>, state: Arc<State>) {
    let service = service_fn(move |req| handle(req, name.clone(), state.clone()));
    // A client closing or resetting its connection is normal here, not an error.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn handle(
    req: Request<Incoming>,
    name: Arc<str>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == HEALTH_PATH {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        let (status, body) = if state.unhealthy.load(Ordering::SeqCst) {
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
        } else {
            (StatusCode::OK, "ok")
        };
        return Ok(text(status, &name, body.to_string()));
    }

    state.requests.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == WEBSOCKET_PATH {
        return Ok(websocket(req, name, state));
    }
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));

    let (parts, body) = req.into_parts();
    // A body cut short by the client is answered as if it were empty.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let forced = state.traffic_status.load(Ordering::SeqCst);
    if let Ok(status) = StatusCode::from_u16(forced) {
        return Ok(text(status, &name, name.to_string()));
    }

    let response = match parts.uri.path() {
        p if p == "/echo" || p.starts_with("/echo/") => {
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (key, value) in &parts.headers {
                headers
                    .entry(key.as_str().to_ascii_lowercase())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let path = parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_else(|| parts.uri.path().to_string());
            let json = serde_json::json!({
                "upstream": &*name,
                "method": parts.method.as_str(),
                "path": path,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            let mut response = text(StatusCode::OK, &name, json.to_string());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        "/set-cookie" => {
            let mut response = text(StatusCode::OK, &name, name.to_string());
            let cookie = format!("upstream={name}; Path=/");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, value);
            }
            response
        }
        _ => text(StatusCode::OK, &name, name.to_string()),
    };
    Ok(response)
}

/// The path answered with a WebSocket echo.
pub const WEBSOCKET_PATH: &str = "/ws";

/// `GET /ws`: `101` with the handshake's accept key, then the echo on the upgraded
/// connection; `400` without a WebSocket handshake.
fn websocket(req: Request<Incoming>, name: Arc<str>, state: Arc<State>) -> Response<Full<Bytes>> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let key = req.headers().get(hyper::header::SEC_WEBSOCKET_KEY).cloned();
    let Some(key) = key.filter(|_| upgrade) else {
        return text(
            StatusCode::BAD_REQUEST,
            &name,
            "not a WebSocket handshake".into(),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let task_name = name.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        state.websockets.fetch_add(1, Ordering::SeqCst);
        state.websockets_open.fetch_add(1, Ordering::SeqCst);
        echo(TokioIo::new(upgraded), &task_name).await;
        state.websockets_open.fetch_sub(1, Ordering::SeqCst);
    });
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, &name, String::new());
    *response.body_mut() = Full::new(Bytes::new());
    let headers = response.headers_mut();
    headers.remove(CONTENT_TYPE);
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Echoes messages until the client closes or the connection ends; `whoami` is
/// answered with `name`.
async fn echo<S>(io: S, name: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    while let Some(Ok(message)) = ws.next().await {
        let reply = match message {
            Message::Text(t) if t.as_str() == "whoami" => Message::text(name),
            Message::Text(_) | Message::Binary(_) => message,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
    let _ = ws.close(None).await;
}

fn text(status: StatusCode, name: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(name) {
        headers.insert("x-upstream", value);
    }
    response
}

/// A port free a moment ago on 127.0.0.1, for a process the test starts to
/// bind (tether's listeners, its admin API, redis-server).
///
/// Taken from outside the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): a port bound as `:0` (the
/// harness's upstreams, every outgoing connection) comes from that range, so
/// nothing else in the tests can take a port between this call and the bind
/// by the process it was meant for. Ports are handed out in turn from a
/// per-process starting point, each checked free by binding it; when the
/// range leaves too little room outside it, `:0` as a last resort.
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (first, count) = ports_outside_ephemeral_range();
    let start = u64::from(std::process::id()).wrapping_mul(7919);
    for _ in 0..count.min(4096) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + ((start + n) % count) as u16;
        if StdTcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let listener = StdTcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the bound port: {e}"))
        .port()
}

/// The larger stretch of ports (first, count) below or above the kernel's
/// ephemeral range, above 1024; a `count` of 0 when unknown or too small.
fn ports_outside_ephemeral_range() -> (u16, u64) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        });
    let Some((low, high)) = range else {
        return (0, 0);
    };
    let below = (1025u16, u64::from(low.saturating_sub(1025)));
    let above = (high.saturating_add(1), u64::from(u16::MAX - high));
    let best = if below.1 >= above.1 { below } else { above };
    if best.1 < 1000 {
        (0, 0)
    } else {
        best
    }
}
