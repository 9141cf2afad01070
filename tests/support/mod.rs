//! The integration-test harness: upstreams ([`Upstream`]: healthy, refusing, black
//! hole, slow), the typed configuration builder ([`tether()`], `config.rs`), the proxy
//! process ([`TetherProc`]), `tether -t` ([`check_config`]), HTTP clients, and admin
//! API calls (`api.rs`). Use it from a test file with `mod support;` then
//! `use support::*;`.
//!
//! Rules kept here: real sockets on 127.0.0.1 only; every wait is a bounded poll; every
//! thread and process started is stopped on Drop.
//!
//! HTTP helpers use reqwest's blocking client: call them from plain `#[test]`s (or from
//! `tokio::task::spawn_blocking`); inside `#[tokio::test]` use [`async_client`].
#![allow(dead_code)]
// Waits and timings measure real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

pub mod api;
pub mod browser;
pub mod cflb;
pub mod config;
pub mod pki;
pub mod raw;
pub mod redis;
pub mod tether;
pub mod tools;
pub mod upstream;
pub mod websocket;

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::Policy;

// A test file may name the builder's items through `support::config` instead.
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use raw::*;
pub use tether::*;
// A test file with upstreams of its own (tests/realtime_proxy.rs) names no `Upstream`.
#[allow(unused_imports)]
pub use upstream::{free_port, Upstream};

/// Per-request timeout of the clients built here.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking client: no proxy from the environment, 10 s timeout, no redirects followed,
/// no cookie store (tests handle `Cookie` / `Set-Cookie` themselves). Connections are
/// kept alive and reused between requests to the same address.
pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .redirect(Policy::none())
        .build()
        .expect("build the blocking reqwest client")
}

/// As [`client`], with a cookie store (a browser-like client for affinity tests).
pub fn cookie_client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .expect("build the blocking reqwest client")
}

/// As [`client`], for `#[tokio::test]`s.
pub fn async_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .redirect(Policy::none())
        .build()
        .expect("build the async reqwest client")
}

/// `GET url` with `Host: host`: status, headers, body. Panics on a transport error
/// (use the client directly to observe those).
pub fn get(client: &Client, url: &str, host: &str) -> (u16, HeaderMap, String) {
    get_h(client, url, &[("host", host)])
}

/// `GET url` with the given extra headers (name, value; repeated names are appended).
pub fn get_h(client: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    send(client, reqwest::Method::GET, url, headers, "")
}

/// Any method, headers and body. Panics on a transport error.
pub fn send(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HeaderMap, String) {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("bad header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("bad header value {value:?}: {e}"));
        map.append(name, value);
    }
    let mut request = client.request(method.clone(), url).headers(map);
    if !body.is_empty() {
        request = request.body(body.to_string());
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .unwrap_or_else(|e| panic!("{method} {url}: cannot read the body: {e:?}"));
    (status, headers, body)
}

/// The first value of header `name` as a string, if present and printable.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Which [`Upstream`] answered: its `x-upstream` header.
pub fn upstream_of(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-upstream")
}

/// The `Set-Cookie` header (whole line) that sets cookie `name`, if any.
pub fn set_cookie_line(headers: &HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().starts_with(&prefix))
        .map(str::to_string)
}

/// The value cookie `name` is set to by a `Set-Cookie` header, if any.
pub fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let line = set_cookie_line(headers, name)?;
    let pair = line.trim_start().split(';').next()?;
    Some(pair[name.len() + 1..].to_string())
}

/// A blocking client whose connections leave from `ip` (any 127.0.0.0/8 address),
/// so one test can play many clients.
pub fn client_from(ip: std::net::IpAddr) -> Client {
    Client::builder()
        .no_proxy()
        .local_address(ip)
        .timeout(CLIENT_TIMEOUT)
        .redirect(Policy::none())
        .build()
        .expect("build the blocking reqwest client")
}

/// `(decision, endpoint)` from `X-Tether-Decision: <lb>/<pool>/<endpoint>/<decision>`
/// (a fifth part, `/<rule>`, when a load balancing rule applied).
pub fn decision_of(headers: &HeaderMap) -> (String, String) {
    let value = header(headers, "x-tether-decision").expect("X-Tether-Decision");
    let parts: Vec<&str> = value.split('/').collect();
    assert!(parts.len() == 4 || parts.len() == 5, "{value}");
    (parts[3].to_string(), parts[2].to_string())
}

/// GET / through `proxy` with this Host and, optionally, a `__cflb` cookie:
/// (status, body — the answering endpoint's name, the affinity decision, the
/// new `__cflb` from `Set-Cookie`). The decision is empty on a non-200 or
/// without `decision_header: true`; when present, it must name the endpoint
/// that answered.
pub fn visit_as(
    client: &Client,
    proxy: &TetherProc,
    host: &str,
    cookie: Option<&str>,
) -> (u16, String, String, Option<String>) {
    let cookie_header = cookie.map(|c| format!("__cflb={c}"));
    let mut headers = vec![("host", host)];
    if let Some(c) = cookie_header.as_deref() {
        headers.push(("cookie", c));
    }
    let (status, h, body) = get_h(client, &proxy.url("/"), &headers);
    if status != 200 {
        return (status, body, String::new(), None);
    }
    let decision = match header(&h, "x-tether-decision") {
        None => String::new(),
        Some(_) => {
            let (decision, endpoint) = decision_of(&h);
            assert_eq!(
                endpoint, body,
                "the decision names the endpoint that answered"
            );
            decision
        }
    };
    (status, body, decision, set_cookie_value(&h, "__cflb"))
}
