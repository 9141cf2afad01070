//! Real-time traffic through the real binary (issue 19): a request that
//! meets a stale pooled upstream connection is sent again on a fresh one
//! (and counted), one whose body was already sent is not; an upgraded
//! (WebSocket-like) connection that ends normally leaves no ERROR line and
//! one access-log line with its bytes both ways; server-sent events are
//! streamed event by event; a long poll obeys its pool's `read_timeout`.
//!
//! The upstream here is [`RawUpstream`], a raw HTTP/1.1 server on a
//! `std::net::TcpListener` whose misbehaviour is exact: it answers the
//! first request of a connection with keep-alive and closes the connection
//! when a second request arrives on it, as an endpoint whose idle timeout
//! fires just as a reused connection's request arrives.

// The upstream's reads are bounded by real time on purpose (as in tests/support).
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::*;

/// A bound for every wait here.
const WAIT: Duration = Duration::from_secs(10);

/// What [`RawUpstream`] does with the requests of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The first request of a connection is answered (`200`, keep-alive);
    /// a later one on the same connection is read whole (body too), then
    /// the connection is closed unanswered.
    StaleAfterFirst,
    /// Every request is answered as its path says (see [`RawUpstream`]).
    Serve,
}

/// One request as the upstream read it.
#[derive(Clone, Debug)]
struct Seen {
    connection: usize,
    method: String,
    path: String,
    body: Vec<u8>,
}

struct Shared {
    mode: Mode,
    stop: AtomicBool,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Events the SSE client has seen so far (the upstream waits for it).
    events_seen: AtomicUsize,
    /// Bytes the upgraded exchange received from Tether, per exchange end.
    upgraded_bytes: Mutex<Vec<usize>>,
}

/// A raw HTTP/1.1 upstream. In [`Mode::Serve`]:
/// - `/ws` with `Upgrade: websocket`: `101`, then echoes what comes in
///   8-byte messages; `CLOSEUP_` makes it close its side, `RESETUP_` makes
///   it close with unread bytes waiting (a reset);
/// - `/sse?n=N`: `200 text/event-stream`, no length, N events, each after
///   the client has seen the one before (see [`RawUpstream::saw_event`]),
///   then closes;
/// - `/poll?ms=M`: answers `200 polled` after M ms;
/// - anything else: `200 ok`, keep-alive.
struct RawUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl RawUpstream {
    fn start(mode: Mode) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            mode,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            events_seen: AtomicUsize::new(0),
            upgraded_bytes: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = s.connections.fetch_add(1, Ordering::SeqCst);
                        let s = Arc::clone(&s);
                        std::thread::spawn(move || serve(stream, n, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawUpstream {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    fn endpoint(&self, name: &str) -> Endpoint {
        Endpoint::at(name, &self.addr.to_string())
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The SSE client saw `n` events.
    fn saw_event(&self, n: usize) {
        self.shared.events_seen.store(n, Ordering::SeqCst);
    }

    fn upgraded_bytes(&self) -> Vec<usize> {
        self.shared.upgraded_bytes.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head and its `Content-Length` body; `None` at EOF,
/// error, stop or after [`WAIT`].
fn read_request(stream: &mut TcpStream, shared: &Shared) -> Option<(String, Vec<u8>)> {
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if Instant::now() > deadline || shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        if Instant::now() > deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return None,
        }
    }
    Some((head, body))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The value of header `name` (lower-case) in a request or response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn serve(mut stream: TcpStream, connection: usize, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut on_connection = 0;
    while let Some((head, body)) = read_request(&mut stream, shared) {
        let mut first = head.lines().next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        shared.seen.lock().unwrap().push(Seen {
            connection,
            method: method.clone(),
            path: path.clone(),
            body,
        });
        on_connection += 1;
        if shared.mode == Mode::StaleAfterFirst && on_connection > 1 {
            return; // closed unanswered
        }
        let upgrade = header(&head, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if path.starts_with("/ws") && upgrade {
            return upgraded(stream, shared);
        }
        if let Some(n) = path.strip_prefix("/sse?n=") {
            return events(stream, n.parse().unwrap_or(1), shared);
        }
        if let Some(ms) = path.strip_prefix("/poll?ms=") {
            let ms = ms.parse().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npolled\n");
            continue;
        }
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";
        if stream.write_all(ok).is_err() {
            return;
        }
    }
}

/// The upgraded side: echoes 8-byte messages until the peer closes or a
/// `CLOSEUP_` / `RESETUP_` message.
fn upgraded(mut stream: TcpStream, shared: &Shared) {
    let answer =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    if stream.write_all(answer).is_err() {
        return;
    }
    let deadline = Instant::now() + WAIT;
    let mut received = 0;
    let mut message = [0u8; 8];
    let mut filled = 0;
    while Instant::now() < deadline && !shared.stop.load(Ordering::SeqCst) {
        match stream.read(&mut message[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                received += n;
                filled += n;
                if filled < message.len() {
                    continue;
                }
                filled = 0;
                match &message {
                    b"CLOSEUP_" => break,
                    b"RESETUP_" => {
                        // Closing with unread bytes waiting sends a reset.
                        let _ = wait_readable(&stream);
                        break;
                    }
                    _ => {
                        if stream.write_all(&message).is_err() {
                            break;
                        }
                    }
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    shared.upgraded_bytes.lock().unwrap().push(received);
}

/// Waits (bounded) until bytes wait unread on `stream`.
fn wait_readable(stream: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    wait_until(
        Duration::from_secs(2),
        || matches!(stream.peek(&mut one), Ok(n) if n > 0),
    )
}

/// `n` server-sent events, each written once the client saw the one before.
fn events(mut stream: TcpStream, n: usize, shared: &Shared) {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if stream.write_all(head).is_err() {
        return;
    }
    for i in 0..n {
        let seen = wait_until(WAIT, || shared.events_seen.load(Ordering::SeqCst) >= i);
        if !seen {
            break;
        }
        if stream
            .write_all(format!("data: event {i}\n\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

// ---------------------------------------------------------------- helpers

fn proxy_for(up: &RawUpstream) -> TetherProc {
    configured(up, tether().listener(free_port()).admin(free_port()))
}

/// One worker thread: a request then always finds the connection the one before
/// it left in the pool (with several, Pingora's pool can miss a connection its
/// idle watcher on another thread still holds, and make a new one: "failed to
/// acquire reusable stream"), so the stale connection is met for sure.
fn configured(up: &RawUpstream, t: Tether) -> TetherProc {
    t.load_balancer("*", lb(["p"]))
        .pool("p", pool([up.endpoint("raw-1")]))
        .builder()
        .threads(1)
        .start()
}

/// One request on a fresh client connection: the response's text (until
/// its length is complete, the peer closes, or 10 s).
fn request(proxy: &TetherProc, raw: &str) -> String {
    let mut s = raw_connect(proxy.addr());
    s.write_all(raw.as_bytes()).expect("send");
    read_until(&mut s, WAIT, whole_response).0
}

fn get_path(proxy: &TetherProc, path: &str) -> String {
    request(
        proxy,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn metrics(proxy: &TetherProc) -> String {
    get(&client(), &proxy.admin_url("/metrics"), &proxy.admin_host()).2
}

/// The value of the series `name{labels}` in a metrics text (0 if absent).
fn series(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn retries(proxy: &TetherProc, reason: &str) -> f64 {
    series(
        &metrics(proxy),
        &format!("tether_upstream_retries_total{{reason=\"{reason}\"}}"),
    )
}

fn error_lines(proxy: &TetherProc) -> Vec<String> {
    proxy.log_lines(" ERROR ")
}

fn access_lines(proxy: &TetherProc, path: &str) -> Vec<String> {
    proxy
        .log_lines(" access]")
        .into_iter()
        .filter(|l| l.contains(&format!(" path={path} ")))
        .collect()
}

// ---------------------------------------------------------------- retry

#[test]
fn a_request_on_a_stale_pooled_connection_is_sent_again_on_a_fresh_one() {
    let up = RawUpstream::start(Mode::StaleAfterFirst);
    let proxy = proxy_for(&up);
    let first = get_path(&proxy, "/one");
    assert_eq!(status_of(&first), Some(200), "{first}");
    // Tether keeps the upstream connection; the endpoint closes it when the
    // next request arrives on it.
    let answer = get_path(&proxy, "/two");
    assert_eq!(status_of(&answer), Some(200), "{answer}\n{}", proxy.logs());
    assert_eq!(retries(&proxy, "stale_connection"), 1.0);
    let seen = up.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/one", "/two", "/two"]);
    let connections: Vec<usize> = seen.iter().map(|s| s.connection).collect();
    assert_eq!(connections, [0, 0, 1], "sent again on a fresh connection");
    // The next request finds no stale connection: sent once.
    let answer = get_path(&proxy, "/three");
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    assert_eq!(up.seen().len(), 4);
    assert_eq!(retries(&proxy, "stale_connection"), 1.0);
    assert!(error_lines(&proxy).is_empty(), "{}", proxy.logs());
}

/// A WebSocket handshake never goes on a pooled connection (src/proxy/upgrade.rs):
/// with a pooled connection to the endpoint that the endpoint has closed, the
/// upgrade still gets its `101` at the first try, on a new connection, and
/// nothing is sent again.
#[test]
fn a_websocket_upgrade_never_meets_a_stale_pooled_connection() {
    let up = RawUpstream::start(Mode::StaleAfterFirst);
    let proxy = proxy_for(&up);
    assert_eq!(status_of(&get_path(&proxy, "/one")), Some(200));
    let mut s = raw_connect(proxy.addr());
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("send");
    let (answer, _) = read_until(&mut s, WAIT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert_eq!(status_of(&answer), Some(101), "{answer}\n{}", proxy.logs());
    assert_eq!(retries(&proxy, "stale_connection"), 0.0);
    // The pooled connection is still there, unused: the next plain request
    // meets it stale and is sent again.
    assert_eq!(status_of(&get_path(&proxy, "/two")), Some(200));
    assert_eq!(retries(&proxy, "stale_connection"), 1.0);
}

#[test]
fn a_request_whose_body_was_sent_is_not_sent_again() {
    let up = RawUpstream::start(Mode::StaleAfterFirst);
    let proxy = proxy_for(&up);
    assert_eq!(status_of(&get_path(&proxy, "/one")), Some(200));
    let answer = request(
        &proxy,
        "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(status_of(&answer), Some(502), "{answer}\n{}", proxy.logs());
    let posts: Vec<Seen> = up
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "sent once: {posts:?}");
    assert_eq!(posts[0].body, b"hello");
    let text = metrics(&proxy);
    for reason in ["stale_connection", "connect_failure"] {
        let line = format!("tether_upstream_retries_total{{reason=\"{reason}\"}} 0");
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}

/// A `POST` that was written on a pooled connection the endpoint then closed
/// unanswered is not sent again, body or not: an endpoint that ran it and
/// died looks the same, and a `POST` is never run twice (as NGINX). An
/// idempotent method (`DELETE`) in the same place is.
#[test]
fn a_written_post_is_not_sent_again_and_an_idempotent_method_is() {
    let up = RawUpstream::start(Mode::StaleAfterFirst);
    let proxy = proxy_for(&up);
    assert_eq!(status_of(&get_path(&proxy, "/one")), Some(200));
    let answer = request(
        &proxy,
        "POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(502), "{answer}\n{}", proxy.logs());
    assert_eq!(retries(&proxy, "stale_connection"), 0.0);

    assert_eq!(status_of(&get_path(&proxy, "/two")), Some(200));
    let answer = request(
        &proxy,
        "DELETE /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(200), "{answer}\n{}", proxy.logs());
    assert_eq!(retries(&proxy, "stale_connection"), 1.0);
}

// ---------------------------------------------------------------- upgraded connections

/// Opens an upgraded (WebSocket-like) connection to `/ws?end=<tag>`.
fn upgrade(proxy: &TetherProc, tag: &str) -> TcpStream {
    let mut s = raw_connect(proxy.addr());
    s.write_all(
        format!(
            "GET /ws?end={tag} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("send");
    let (answer, _) = read_until(&mut s, WAIT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert_eq!(status_of(&answer), Some(101), "{answer}\n{}", proxy.logs());
    s
}

/// Sends an 8-byte message and reads its echo.
fn echo(s: &mut TcpStream, message: &[u8; 8]) {
    s.write_all(message).expect("send a message");
    let (back, _) = read_until(s, WAIT, |b| b.len() >= 8);
    assert_eq!(back.as_bytes(), message);
}

#[test]
fn upgraded_connections_end_normally_whichever_side_closes() {
    let up = RawUpstream::start(Mode::Serve);
    let proxy = proxy_for(&up);
    // The client closes; the endpoint closes after it.
    let mut s = upgrade(&proxy, "client");
    echo(&mut s, b"hello___");
    echo(&mut s, b"again___");
    s.shutdown(std::net::Shutdown::Write).expect("close");
    assert!(read_for(&mut s, WAIT).1, "tether closes the client's side");
    // The endpoint closes.
    let mut s = upgrade(&proxy, "endpoint");
    echo(&mut s, b"hello___");
    s.write_all(b"CLOSEUP_").expect("send");
    assert!(read_for(&mut s, WAIT).1, "tether closes the client's side");
    // The endpoint resets (closes with bytes unread) after the client's last message.
    let mut s = upgrade(&proxy, "reset");
    echo(&mut s, b"hello___");
    s.write_all(b"RESETUP_unread__").expect("send");
    assert!(read_for(&mut s, WAIT).1, "tether closes the client's side");
    drop(s);

    for (tag, received) in [("client", 16), ("endpoint", 16), ("reset", 24)] {
        let path = format!("/ws?end={tag}");
        assert!(
            proxy.wait_for_logs(WAIT, |_| !access_lines(&proxy, &path).is_empty()),
            "no access line for {path}:\n{}",
            proxy.logs()
        );
        let lines = access_lines(&proxy, &path);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.contains(" status=101 "), "{line}");
        assert!(!line.contains(" error="), "a normal end: {line}");
        assert!(line.contains(" bytes_sent=8 ") || tag == "client", "{line}");
        assert!(
            line.contains(&format!(" bytes_received={received}")),
            "{line}"
        );
        assert!(!line.contains("total_time=0.000000"), "{line}");
    }
    assert!(
        error_lines(&proxy).is_empty(),
        "normal ends are no errors:\n{}",
        proxy.logs()
    );
    assert_eq!(up.upgraded_bytes().len(), 3);
}

// ---------------------------------------------------------------- streaming

#[test]
fn server_sent_events_are_streamed_event_by_event_past_the_read_timeout() {
    let up = RawUpstream::start(Mode::Serve);
    // A read timeout shorter than the whole stream, longer than its gaps.
    let proxy = configured(
        &up,
        tether()
            .listener(free_port())
            .admin(free_port())
            .upstream_read_timeout(1.0),
    );
    let mut s = raw_connect(proxy.addr());
    s.write_all(b"GET /sse?n=6 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n")
        .expect("send");
    // The endpoint writes event i+1 only once the client saw event i: a
    // buffered stream would stall here until the endpoint gave up.
    let mut seen = String::new();
    for i in 0..6 {
        let want = format!("data: event {i}\n\n");
        let (more, closed) =
            read_until(&mut s, WAIT, |b| String::from_utf8_lossy(b).contains(&want));
        seen.push_str(&more);
        assert!(
            seen.contains(&want),
            "event {i} did not arrive before the next was written (closed: {closed}):\n{seen}\n{}",
            proxy.logs()
        );
        // Gaps of 0.4 s: the stream (2 s) outlasts the 1 s read timeout.
        std::thread::sleep(Duration::from_millis(400));
        up.saw_event(i + 1);
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        read_for(&mut s, WAIT).1,
        "the stream ends when the endpoint closes"
    );
    assert!(error_lines(&proxy).is_empty(), "{}", proxy.logs());
}

#[test]
fn a_long_poll_waits_for_its_pools_read_timeout() {
    let up = RawUpstream::start(Mode::Serve);
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .upstream_read_timeout(0.5)
        .load_balancer("short.test", lb(["short"]))
        .load_balancer("long.test", lb(["long"]))
        .pool("short", pool([up.endpoint("raw-short")]))
        .pool(
            "long",
            pool([up.endpoint("raw-long")]).set("read_timeout", 10),
        )
        .start();
    let poll = |host: &str| {
        request(
            &proxy,
            &format!("GET /poll?ms=1500 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    let short = poll("short.test");
    assert_eq!(status_of(&short), Some(504), "{short}");
    let long = poll("long.test");
    assert_eq!(status_of(&long), Some(200), "{long}\n{}", proxy.logs());
    assert!(long.ends_with("polled\n"), "{long}");
}

#[test]
fn a_reload_sets_a_pools_read_timeout_and_the_admin_api_shows_it() {
    let up = RawUpstream::start(Mode::Serve);
    let (listen, admin) = (free_port(), free_port());
    let section = |read_timeout: Option<f64>| {
        let mut p = pool([up.endpoint("raw-1")]);
        if let Some(t) = read_timeout {
            p = p.set("read_timeout", t);
        }
        tether()
            .listener(listen)
            .admin(admin)
            .upstream_read_timeout(0.5)
            .load_balancer("*", lb(["p"]))
            .pool("p", p)
    };
    let mut proxy = section(None).start();
    let poll = "GET /poll?ms=1500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&request(&proxy, poll)), Some(504));
    let view = support::api::get(&proxy, "/v1/pools/p").1["result"].clone();
    assert_eq!(view["read_timeout"], serde_json::Value::Null, "{view}");

    proxy.rewrite_config(&section(Some(10.0)).yaml());
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", WAIT),
        "{}",
        proxy.logs()
    );
    let answer = request(&proxy, poll);
    assert_eq!(status_of(&answer), Some(200), "{answer}\n{}", proxy.logs());
    let view = support::api::get(&proxy, "/v1/pools/p").1["result"].clone();
    assert_eq!(view["read_timeout"], 10.0, "{view}");
}

#[test]
fn a_connect_failure_failed_over_is_counted_as_a_retry() {
    let up = RawUpstream::start(Mode::Serve);
    let refusing = format!("127.0.0.1:{}", free_port());
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool(
            "p",
            pool([up.endpoint("raw-1"), Endpoint::at("refusing", &refusing)]),
        )
        .start();
    // Random steering: within 40 requests one goes to `refusing` first.
    for _ in 0..40 {
        let answer = get_path(&proxy, "/");
        assert_eq!(status_of(&answer), Some(200), "{answer}\n{}", proxy.logs());
        if retries(&proxy, "connect_failure") >= 1.0 {
            break;
        }
    }
    assert!(
        retries(&proxy, "connect_failure") >= 1.0,
        "{}",
        proxy.logs()
    );
    assert_eq!(retries(&proxy, "stale_connection"), 0.0);
}
