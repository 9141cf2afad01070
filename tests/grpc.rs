//! gRPC through Tether (issue 20, `pools.<name>.protocol`, docs/origins.md):
//! real grpcio servers (tests/grpc/server.py: unary `Echo`, server-streaming
//! `Count`, a `Fail` call answering NOT_FOUND, and grpcio-health-checking's
//! `grpc.health.v1` service) behind the real `tether` binary, called by
//! grpcio's own client (tests/grpc/client.py) over a plain listener, so with
//! HTTP/2 prior knowledge (h2c) as gRPC clients speak it.
//!
//! - over `h2c` to the endpoints: unary and streaming calls, trailers and an
//!   error status with its message reach the client, and every affinity that
//!   applies to gRPC (`none`, `header` on a metadata key, `source_ip`,
//!   `ip_cookie` for a client that keeps no cookie);
//! - over `h2` (TLS with ALPN h2, `tls.verify: true` against a CA made here);
//! - a `type: grpc` monitor marks a NOT_SERVING endpoint down and traffic
//!   avoids it;
//! - a WebSocket handshake to an `h2c` pool goes over HTTP/1.1.
//!
//! The tools come from PyPI, pinned, installed by scripts/grpc_tools.sh into
//! target/grpc-venv (once; cheap when done).

// Waits are bounded by real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::api::{endpoint_view, wait_for_health};
use support::pki::TestCa;
use support::tools::{prepared_python, repo, wait_listening};
use support::*;
use tempfile::TempDir;

// ---------------------------------------------------------------- the tools

/// The venv's python, from scripts/grpc_tools.sh run once per test binary.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        prepared_python(
            "grpc_tools.sh",
            "it installs grpcio for these tests (python3 with venv, PyPI)",
        )
    })
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/grpc").join(name)
}

// ---------------------------------------------------------------- the servers

/// One tests/grpc/server.py on a free loopback port, h2c or TLS (`cert`,
/// `key`); killed on Drop.
struct GrpcServer {
    name: String,
    port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl GrpcServer {
    fn start(name: &str, tls: Option<(&str, &str)>) -> GrpcServer {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(python());
        command
            .arg(script("server.py"))
            .args(["--name", name, "--port", &port.to_string()]);
        if let Some((cert, key)) = tls {
            command.args(["--cert", cert, "--key", key]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start tests/grpc/server.py");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(&mut child, addr, &format!("gRPC server {name}"), log.path());
        GrpcServer {
            name: name.to_string(),
            port,
            child,
            log,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- gRPC server {} log ---\n{}",
                self.name,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
        }
    }
}

// ---------------------------------------------------------------- the client

/// Runs tests/grpc/client.py against `target` (plaintext h2c) with
/// `authority` (which load balancer), one JSON line per call, bounded 60 s.
fn calls(target: &str, authority: &str, calls: &[String]) -> Vec<Value> {
    calls_with(target, authority, None, calls)
}

/// As [`calls`], over TLS verified against the CA file `ca` when given.
fn calls_with(target: &str, authority: &str, ca: Option<&str>, calls: &[String]) -> Vec<Value> {
    let mut command = Command::new(python());
    command
        .arg(script("client.py"))
        .args(["--target", target, "--authority", authority]);
    if let Some(ca) = ca {
        command.args(["--ca", ca]);
    }
    let Ran { status, out, err } = run_to_end(
        command.args(calls),
        Duration::from_secs(60),
        "tests/grpc/client.py",
    );
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "client.py failed:\n{out}\n{err}"
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), calls.len(), "{out}\n{err}");
    lines
}

fn echo(arg: &str, metadata: &str) -> String {
    format!("echo:{arg}:{metadata}")
}

/// The backend that answered an `Echo` line, checking the call succeeded.
fn backend_of(line: &Value, context: &str) -> String {
    assert_eq!(line["ok"], true, "{line} {context}");
    line["reply"]["backend"].as_str().unwrap().to_string()
}

/// `n` echo calls with `metadata` through `proxy` for `authority`: the
/// backends that answered them.
fn echo_backends(proxy: &TetherProc, authority: &str, metadata: &str, n: usize) -> Vec<String> {
    let list: Vec<String> = (0..n).map(|i| echo(&i.to_string(), metadata)).collect();
    calls(&proxy.addr().to_string(), authority, &list)
        .iter()
        .map(|l| backend_of(l, &proxy.logs()))
        .collect()
}

fn distinct(backends: &[String]) -> BTreeSet<&str> {
    backends.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------- the tests

/// Three h2c endpoints; load balancers chosen by the calls' `:authority`:
/// `none.test` (no affinity), `header.test` (`header` on `x-session-id`),
/// `ip.test` (`source_ip`), `ipcookie.test` (`ip_cookie`).
#[test]
fn grpc_over_h2c_unary_streaming_errors_and_every_affinity() {
    let servers = ["a", "b", "c"].map(|n| GrpcServer::start(n, None));
    let endpoints: Vec<String> = servers
        .iter()
        .map(|s| format!("{{ name: {}, address: \"{}\" }}", s.name, s.addr()))
        .collect();
    let (listen, admin) = (free_port(), free_port());
    let proxy = TetherProc::start(&format!(
        "listeners: [{{ address: \"127.0.0.1:{listen}\" }}]\n\
         admin: {{ address: \"127.0.0.1:{admin}\" }}\n\
         decision_header: true\n\
         load_balancers:\n  \
           none.test: {{ default_pools: [grpc] }}\n  \
           header.test:\n    default_pools: [grpc]\n    session_affinity: header\n    \
             session_affinity_attributes: {{ headers: [x-session-id] }}\n  \
           ip.test: {{ default_pools: [grpc], session_affinity: source_ip }}\n  \
           ipcookie.test: {{ default_pools: [grpc], session_affinity: ip_cookie }}\n\
         pools:\n  grpc:\n    protocol: h2c\n    \
           outlier_detection: {{ consecutive_5xx: 1, consecutive_gateway_failure: 1 }}\n    \
           endpoints: [{}]\n",
        endpoints.join(", ")
    ));
    let target = proxy.addr().to_string();

    // Unary, server streaming, an error with its message; trailers pass.
    let lines = calls(
        &target,
        "none.test",
        &[
            echo("hello", "x-session-id=s1,x-extra=42"),
            "count:5".to_string(),
            "fail:the-thing".to_string(),
        ],
    );
    let backend = backend_of(&lines[0], &proxy.logs());
    assert_eq!(lines[0]["reply"]["request"], "hello", "{}", lines[0]);
    assert_eq!(lines[0]["reply"]["metadata"]["x-session-id"], "s1");
    assert_eq!(lines[0]["reply"]["metadata"]["x-extra"], "42");
    assert_eq!(lines[0]["trailers"]["x-backend"], backend.as_str());
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    let streamed = lines[1]["reply"].as_array().unwrap();
    assert_eq!(streamed.len(), 5, "{}", lines[1]);
    let stream_backend = lines[1]["trailers"]["x-backend"].as_str().unwrap();
    for (i, message) in streamed.iter().enumerate() {
        assert_eq!(
            message.as_str(),
            Some(format!("{stream_backend}:{i}").as_str())
        );
    }
    assert_eq!(lines[2]["ok"], false, "{}", lines[2]);
    assert_eq!(lines[2]["code"], "NOT_FOUND", "{}", lines[2]);
    assert_eq!(lines[2]["details"], "no such thing: the-thing");

    // An HTTP/1.1 client's gRPC request reaches the h2c endpoint with its
    // `TE: trailers` (Pingora drops TE as hop-by-hop; Tether puts it back):
    // without it the server resets the stream and the client gets 502.
    let (status, headers, body) = send(
        &client(),
        reqwest::Method::POST,
        &proxy.url("/tether.test.Test/Echo"),
        &[
            ("host", "none.test"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
        "\0\0\0\0\x05http1",
    );
    assert_eq!(status, 200, "{body}\n{}", proxy.logs());
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/grpc")
    );
    assert!(body.contains("\"request\": \"http1\""), "{body:?}");

    // No affinity: calls spread (all of 30 on one of 3 endpoints is ~1e-13).
    let spread = echo_backends(&proxy, "none.test", "", 30);
    assert!(distinct(&spread).len() >= 2, "{spread:?}");

    // Header affinity on gRPC metadata: one key, one endpoint; keys spread.
    let mut by_key = BTreeMap::new();
    for key in 0..6 {
        let seen = echo_backends(
            &proxy,
            "header.test",
            &format!("x-session-id=user-{key}"),
            8,
        );
        let one = distinct(&seen);
        assert_eq!(one.len(), 1, "key user-{key} reached {seen:?}");
        by_key.insert(key, seen[0].clone());
    }
    let keys_on: BTreeSet<&String> = by_key.values().collect();
    assert!(
        keys_on.len() >= 2,
        "six keys all on one endpoint: {by_key:?}"
    );

    // Source IP, and ip_cookie for a client that keeps no cookie: this
    // client's calls stay on one endpoint.
    for authority in ["ip.test", "ipcookie.test"] {
        let by_ip = echo_backends(&proxy, authority, "", 12);
        assert_eq!(distinct(&by_ip).len(), 1, "{authority}: {by_ip:?}");
    }

    // gRPC errors are HTTP 200: passive health, ejecting at the first 5xx
    // or gateway failure, ejects nobody for them.
    let failures: Vec<String> = (0..9).map(|i| format!("fail:{i}")).collect();
    let failed = calls(&target, "none.test", &failures);
    assert!(
        failed.iter().all(|l| l["code"] == "NOT_FOUND"),
        "{failed:?}"
    );
    for server in &servers {
        let view = endpoint_view(&proxy, "grpc", &server.name);
        assert_eq!(view["ejections"], 0, "{view}\n{}", proxy.logs());
    }

    // The access log has the gRPC calls with their HTTP status.
    let logs = proxy.logs();
    assert!(
        logs.contains("/tether.test.Test/Echo") && logs.contains("/tether.test.Test/Count"),
        "{logs}"
    );
}

/// A plain listener speaks HTTP/2 to a connection that opens with the h2c
/// preface (its first frame is the server's SETTINGS), and closes one with
/// no request in flight after `client_limits.idle_timeout`.
#[test]
fn a_plain_listener_takes_h2c_and_closes_it_when_idle() {
    use std::io::{Read, Write};
    let listen = free_port();
    let proxy = TetherProc::start(&format!(
        "listeners: [{{ address: \"127.0.0.1:{listen}\" }}]\n\
         client_limits: {{ idle_timeout: 1 }}\n\
         load_balancers:\n  \"*\": {{ default_pools: [p] }}\n\
         pools:\n  p:\n    protocol: h2c\n    endpoints: [{{ name: e, address: \"127.0.0.1:{}\" }}]\n",
        free_port()
    ));
    let mut conn = std::net::TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut frame = [0u8; 9];
    conn.read_exact(&mut frame).unwrap();
    assert_eq!(
        frame[3], 4,
        "the server's first frame is SETTINGS: {frame:?}"
    );
    // Then nothing is asked: the connection ends (GOAWAY or not) within
    // idle_timeout and the 10 s bound, not at the read timeout.
    let mut rest = Vec::new();
    let ended = conn.read_to_end(&mut rest);
    assert!(
        ended.is_ok(),
        "still open after 10 s: {ended:?}\n{}",
        proxy.logs()
    );
}

/// `protocol: h2` reaches TLS endpoints with ALPN h2, verified against a CA
/// made here, from a plain (h2c) and a TLS (ALPN h2) listener; `h2` without
/// `tls` is a configuration error at its key.
#[test]
fn grpc_over_h2_to_tls_endpoints_with_verification() {
    let pki = TempDir::new().unwrap();
    let ca = TestCa::new("tether grpc test CA");
    let ca_path = pki.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let (listener_cert, listener_key) = ca.leaf(&["tls.test"], None);
    let (listener_cert_path, listener_key_path) =
        (pki.path().join("tls.pem"), pki.path().join("tls.key"));
    std::fs::write(&listener_cert_path, listener_cert.pem()).unwrap();
    std::fs::write(&listener_key_path, listener_key.serialize_pem()).unwrap();
    let (cert, key) = ca.leaf(&["grpc.test"], None);
    let (cert_path, key_path) = (pki.path().join("grpc.pem"), pki.path().join("grpc.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let servers = ["t1", "t2"].map(|n| GrpcServer::start(n, Some((&cert_path, &key_path))));

    let (listen, listen_tls) = (free_port(), free_port());
    let section = |protocol: &str, tls: bool| {
        let tls = if tls {
            format!(
                "    tls: {{ verify: true, ca_path: \"{}\", server_name: grpc.test }}\n",
                ca_path.display()
            )
        } else {
            String::new()
        };
        format!(
            "listeners:\n  - {{ address: \"127.0.0.1:{listen}\" }}\n  \
               - {{ address: \"127.0.0.1:{listen_tls}\", tls: {{ cert_path: \"{}\", key_path: \"{}\" }} }}\n\
             load_balancers:\n  \
               tls.test:\n    default_pools: [secure]\n    session_affinity: header\n    \
                 session_affinity_attributes: {{ headers: [x-session-id] }}\n\
             pools:\n  secure:\n    protocol: {protocol}\n{tls}    endpoints:\n      \
               - {{ name: t1, address: \"{}\" }}\n      - {{ name: t2, address: \"{}\" }}\n",
            listener_cert_path.display(),
            listener_key_path.display(),
            servers[0].addr(),
            servers[1].addr()
        )
    };
    let (code, _, err) = check_section(&section("h2", false));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(
            "tether.pools.secure.protocol: h2 is HTTP/2 over TLS and needs the pool's tls"
        ),
        "{err}"
    );

    let proxy = TetherProc::start(&section("h2", true));
    let target = proxy.addr().to_string();
    let lines = calls(
        &target,
        "tls.test",
        &[
            echo("over-tls", "x-session-id=k"),
            "count:4".to_string(),
            "fail:x".to_string(),
        ],
    );
    let backend = backend_of(&lines[0], &proxy.logs());
    assert_eq!(lines[0]["trailers"]["x-backend"], backend.as_str());
    assert_eq!(
        lines[1]["reply"].as_array().map(Vec::len),
        Some(4),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["code"], "NOT_FOUND", "{}", lines[2]);
    assert_eq!(lines[2]["details"], "no such thing: x");
    // The same key stays with its endpoint over TLS too.
    let sticky = echo_backends(&proxy, "tls.test", "x-session-id=k", 8);
    assert_eq!(distinct(&sticky), BTreeSet::from([backend.as_str()]));

    // TLS on both sides: the client reaches the TLS listener with ALPN h2.
    let ca_file = ca_path.display().to_string();
    let lines = calls_with(
        &format!("127.0.0.1:{listen_tls}"),
        "tls.test",
        Some(&ca_file),
        &[echo("both", "x-session-id=k"), "count:3".to_string()],
    );
    assert_eq!(backend_of(&lines[0], &proxy.logs()), backend);
    assert_eq!(lines[0]["reply"]["metadata"]["x-forwarded-proto"], "https");
    assert_eq!(
        lines[1]["reply"].as_array().map(Vec::len),
        Some(3),
        "{}",
        lines[1]
    );
}

/// A `type: grpc` monitor: the endpoint whose health service says
/// NOT_SERVING is marked down and gets no calls; SERVING again, it is back.
#[test]
fn a_grpc_monitor_takes_a_not_serving_endpoint_out() {
    let servers = ["up", "down"].map(|n| GrpcServer::start(n, None));
    let (listen, admin) = (free_port(), free_port());
    let proxy = TetherProc::start(&format!(
        "listeners: [{{ address: \"127.0.0.1:{listen}\" }}]\n\
         admin: {{ address: \"127.0.0.1:{admin}\" }}\n\
         monitors:\n  health: {{ type: grpc, grpc_service: tether.test.Test, interval: 0.2, timeout: 0.2, retries: 0 }}\n\
         load_balancers:\n  \"*\": {{ default_pools: [grpc] }}\n\
         pools:\n  grpc:\n    protocol: h2c\n    monitor: health\n    endpoints:\n      \
           - {{ name: up, address: \"{}\" }}\n      - {{ name: down, address: \"{}\" }}\n",
        servers[0].addr(),
        servers[1].addr()
    ));
    wait_for_health(&proxy, "grpc", "down", true, Duration::from_secs(10));
    let set = calls(
        &servers[1].addr(),
        "x",
        &["sethealth:NOT_SERVING".to_string()],
    );
    assert_eq!(set[0]["reply"], "ok", "{}", set[0]);
    let view = wait_for_health(&proxy, "grpc", "down", false, Duration::from_secs(10));
    let backends = echo_backends(&proxy, "grpc.test", "", 12);
    assert_eq!(distinct(&backends), BTreeSet::from(["up"]), "{view}");
    assert!(
        proxy.logs().contains("the service is NOT_SERVING"),
        "{}",
        proxy.logs()
    );

    calls(&servers[1].addr(), "x", &["sethealth:SERVING".to_string()]);
    wait_for_health(&proxy, "grpc", "down", true, Duration::from_secs(10));
}

/// A WebSocket handshake to an `h2c` pool goes to the endpoint over HTTP/1.1
/// (HTTP/2 has no `Upgrade`): it opens and echoes.
#[test]
fn a_websocket_to_an_h2c_pool_goes_over_http1() {
    let a = Upstream::healthy("a");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool(
            "p",
            pool([&a]).with(|p| p.protocol = ::tether::config::OriginProtocol::H2c),
        )
        .start();
    let mut ws = support::websocket::WebSocket::connect(proxy.addr(), "x", "/ws", None)
        .unwrap_or_else(|e| panic!("WebSocket through tether: {e}\n{}", proxy.logs()));
    assert_eq!(ws.ask("hello"), Ok("hello".to_string()));
    assert_eq!(ws.whoami(), Ok("a".to_string()));
    ws.close();
}
