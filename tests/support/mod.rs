//! The integration-test harness: upstreams ([`Upstream`]), the proxy process
//! ([`TetherProc`]), `tether -t` ([`check_config`]), HTTP clients and a config builder
//! ([`Cfg`]). Use it from a test file with `mod support;` then `use support::*;`.
//!
//! Rules kept here: real sockets on 127.0.0.1 only; every wait is a bounded poll; every
//! thread and process started is stopped on Drop.
//!
//! HTTP helpers use reqwest's blocking client: call them from plain `#[test]`s (or from
//! `tokio::task::spawn_blocking`); inside `#[tokio::test]` use [`async_client`].
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod cflb;
pub mod config;
pub mod tether;
pub mod upstream;

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use reqwest::redirect::Policy;

pub use config::*;
pub use tether::{
    accepts, check_config, check_section, connect_addr, reindent, run_tether, wait_for_port,
    wait_until, wrap_config, TetherBuilder, TetherProc,
};
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

/// `- {name: <name>, address: "<addr>"}` for each upstream, one per line, each line
/// indented by `indent` spaces (for a pool's `endpoints:` list).
pub fn endpoints_yaml(ups: &[&Upstream], indent: usize) -> String {
    let pad = " ".repeat(indent);
    ups.iter()
        .map(|up| {
            format!(
                "{pad}- {{name: {}, address: \"{}\"}}\n",
                up.name(),
                up.addr()
            )
        })
        .collect()
}

/// The monitor [`Cfg::monitor_fast`] defines: HTTP `GET /health`, every second.
pub const FAST_MONITOR: &str = "\
type: http
method: GET
path: /health
expected_codes: \"2xx\"
interval: 1
timeout: 1
retries: 0
consecutive_up: 1
consecutive_down: 1
";

/// A builder for the `tether:` section, read like prose:
///
/// ```ignore
/// let cfg = Cfg::new()
///     .listener(free_port())
///     .lb("*", &["primary"])
///     .pool("primary", &[&web1, &web2])
///     .monitor_fast("primary");
/// let proxy = cfg.start();
/// ```
///
/// Anything the builder has no method for goes in as unindented YAML through the
/// `*_with` methods and [`Cfg::top`].
#[derive(Debug, Clone, Default)]
pub struct Cfg {
    listeners: Vec<String>,
    top: String,
    lbs: Vec<Section>,
    pools: Vec<Section>,
    monitors: Vec<Section>,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    /// Unindented YAML lines of the entry's body.
    body: String,
}

impl Cfg {
    pub fn new() -> Cfg {
        Cfg::default()
    }

    /// A plain-HTTP listener on `127.0.0.1:<port>`.
    pub fn listener(self, port: u16) -> Cfg {
        self.listener_addr(&format!("127.0.0.1:{port}"))
    }

    /// A listener on `addr` as written.
    pub fn listener_addr(mut self, addr: &str) -> Cfg {
        self.listeners.push(addr.to_string());
        self
    }

    /// The admin listener on `127.0.0.1:<port>`, no token.
    pub fn admin(self, port: u16) -> Cfg {
        self.top(&format!("admin: {{address: \"127.0.0.1:{port}\"}}"))
    }

    /// `decision_header: true`.
    pub fn decision_header(self) -> Cfg {
        self.top("decision_header: true")
    }

    /// Any other keys of the tether section (unindented YAML).
    pub fn top(mut self, yaml: &str) -> Cfg {
        self.top.push_str(&reindent(yaml, 0));
        self
    }

    /// A load balancer for `host` (`"*"`: every host) with these `default_pools`.
    pub fn lb(self, host: &str, default_pools: &[&str]) -> Cfg {
        self.lb_with(host, default_pools, "")
    }

    /// As [`Cfg::lb`], plus more keys of the entry (unindented YAML), e.g.
    /// `"session_affinity: cookie\nfallback_pool: spare"`.
    pub fn lb_with(mut self, host: &str, default_pools: &[&str], extra: &str) -> Cfg {
        let body = format!(
            "default_pools: [{}]\n{}",
            default_pools.join(", "),
            reindent(extra, 0)
        );
        self.lbs.push(Section {
            name: host.to_string(),
            body,
        });
        self
    }

    /// A pool of these upstreams (endpoint name = upstream name).
    pub fn pool(self, name: &str, ups: &[&Upstream]) -> Cfg {
        self.pool_with(name, ups, "")
    }

    /// As [`Cfg::pool`], plus more keys of the pool (unindented YAML), e.g.
    /// `"minimum_origins: 2\norigin_steering: {policy: hash}"`.
    pub fn pool_with(mut self, name: &str, ups: &[&Upstream], extra: &str) -> Cfg {
        let body = format!(
            "{}endpoints:\n{}",
            reindent(extra, 0),
            endpoints_yaml(ups, 2)
        );
        self.pools.push(Section {
            name: name.to_string(),
            body,
        });
        self
    }

    /// A pool whose `endpoints:` list is given as YAML (weights, `enabled`, `header`...).
    pub fn pool_yaml(mut self, name: &str, yaml: &str) -> Cfg {
        self.pools.push(Section {
            name: name.to_string(),
            body: reindent(yaml, 0),
        });
        self
    }

    /// Monitors `pool` with [`FAST_MONITOR`] (defined once, under the name `fast`).
    /// Panics if the pool is not defined yet or already has a monitor.
    pub fn monitor_fast(self, pool: &str) -> Cfg {
        let cfg = if self.monitors.iter().any(|m| m.name == "fast") {
            self
        } else {
            self.monitor("fast", FAST_MONITOR)
        };
        cfg.use_monitor(pool, "fast")
    }

    /// Defines monitor `name` with this body (unindented YAML).
    pub fn monitor(mut self, name: &str, yaml: &str) -> Cfg {
        self.monitors.push(Section {
            name: name.to_string(),
            body: reindent(yaml, 0),
        });
        self
    }

    /// Sets `monitor: <monitor>` on an already defined `pool`.
    pub fn use_monitor(mut self, pool: &str, monitor: &str) -> Cfg {
        let section = self
            .pools
            .iter_mut()
            .find(|p| p.name == pool)
            .unwrap_or_else(|| panic!("Cfg: pool {pool:?} is not defined (yet)"));
        assert!(
            !section.body.lines().any(|l| l.starts_with("monitor:")),
            "Cfg: pool {pool:?} already has a monitor"
        );
        section.body = format!("monitor: {monitor}\n{}", section.body);
        self
    }

    /// The first listener address (panics if none).
    pub fn listen(&self) -> &str {
        self.listeners
            .first()
            .map(String::as_str)
            .expect("Cfg: no listener")
    }

    /// The tether section, unindented, ready for [`TetherProc::start`] or
    /// [`check_section`].
    pub fn yaml(&self) -> String {
        let mut out = String::from("listeners:\n");
        for addr in &self.listeners {
            out.push_str(&format!("  - address: \"{addr}\"\n"));
        }
        out.push_str(&self.top);
        for (key, entries) in [
            ("load_balancers", &self.lbs),
            ("pools", &self.pools),
            ("monitors", &self.monitors),
        ] {
            if entries.is_empty() {
                continue;
            }
            out.push_str(key);
            out.push_str(":\n");
            for entry in entries {
                out.push_str(&format!("  {:?}:\n", entry.name));
                out.push_str(&reindent(&entry.body, 4));
            }
        }
        out
    }

    /// Starts tether on this config (see [`TetherProc::start`]).
    pub fn start(&self) -> TetherProc {
        TetherProc::start_with(&self.yaml(), self.listen())
    }

    /// A [`TetherBuilder`] on this config, for more Pingora keys, env or arguments.
    pub fn builder(&self) -> TetherBuilder {
        TetherProc::builder(&self.yaml()).listen(self.listen())
    }
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

/// `(decision, endpoint)` from `X-Tether-Decision: <lb>/<pool>/<endpoint>/<decision>`.
pub fn decision_of(headers: &HeaderMap) -> (String, String) {
    let value = header(headers, "x-tether-decision").expect("X-Tether-Decision");
    let parts: Vec<&str> = value.split('/').collect();
    assert_eq!(parts.len(), 4, "{value}");
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
