//! The file layer: one YAML document, Pingora's keys handed to Pingora's
//! `ServerConf`, everything under `tether:` walked strictly into [`Config`].
//!
//! Every problem is collected (never only the first) with the full key path
//! and reported in document order; see [`super::read`] for the reader and
//! the message styles. This file reads Pingora's part and the top-level
//! `tether:` keys; the sections have their own files
//! ([`super::load_balancer`], [`super::pool`], [`super::monitor`]).

use super::load_balancer::read_load_balancers;
use super::model::*;
use super::monitor::read_monitors;
use super::pool::read_pools;
use super::read::{all, describe, quote, Check, ConfigErrors, Errors, Node};
use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fully validated configuration file.
#[derive(Debug)]
pub struct Loaded {
    /// Pingora's part: the top-level keys, read by Pingora, validated.
    pub server: ServerConf,
    /// Everything under `tether:`.
    pub tether: Config,
}

/// Reads and validates the file. A read error is one error with path `""`
/// naming the file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(
            "",
            format!(
                "cannot read configuration file {}: {e}",
                quote(&path.display().to_string())
            ),
        )
    })?;
    load_str(&text)
}

/// Validates a whole configuration document: the pure walk of the YAML,
/// then the checks it deferred ([`super::checks`]: files, the state file's
/// directory, host names). Relative file paths in it (TLS, token, cookie
/// keys, state) are relative to the working directory.
pub fn load_str(yaml: &str) -> Result<Loaded, ConfigErrors> {
    let mut doc: Value = serde_yaml::from_str(yaml)
        .map_err(|e| ConfigErrors::one("", format!("invalid YAML: {e}")))?;
    doc.apply_merge()
        .map_err(|e| ConfigErrors::one("", format!("invalid YAML: {e}")))?;
    let top = match &doc {
        Value::Mapping(m) => m,
        other => {
            return Err(ConfigErrors::one(
                "",
                format!(
                    "the file must be a mapping of keys (Pingora's and tether:), got {}",
                    describe(other)
                ),
            ))
        }
    };

    let mut errs = Errors::new();
    let server = read_pingora(top, &mut errs);
    let tether = match top
        .iter()
        .enumerate()
        .find(|(_, (k, _))| k.as_str() == Some("tether"))
    {
        Some((i, (_, value))) => read_config(&Node::new(value, "tether", vec![i]), &mut errs),
        None => {
            errs.push(
                "tether".into(),
                vec![usize::MAX],
                "missing: the file needs a tether: section",
            );
            None
        }
    };
    let mut loaded = server
        .zip(tether)
        .map(|(server, tether)| Loaded { server, tether });
    let deferred = errs.take_deferred();
    super::checks::run(deferred, loaded.as_mut().map(|l| &mut l.tether), &mut errs);
    errs.finish(loaded)
}

// ---------------------------------------------------------------------------
// Pingora's part

fn read_pingora(top: &Mapping, errs: &mut Errors) -> Option<ServerConf> {
    let index_of = |key: &str| top.iter().position(|(k, _)| k.as_str() == Some(key));
    let key_name = |k: &Value| match k {
        Value::String(s) => s.clone(),
        other => describe(other),
    };
    let mut rest = top.clone();
    rest.remove("tether");
    let conf = match serde_yaml::from_value::<ServerConf>(Value::Mapping(rest)) {
        Ok(conf) => conf,
        Err(whole) => {
            // Find the key(s) at fault by reading each one alone.
            let before = errs.len();
            for (i, (k, v)) in top.iter().enumerate() {
                if k.as_str() == Some("tether") {
                    continue;
                }
                let mut one = Mapping::new();
                one.insert(k.clone(), v.clone());
                if let Err(e) = serde_yaml::from_value::<ServerConf>(Value::Mapping(one)) {
                    errs.push(key_name(k), vec![i], format!("{e} (a Pingora key)"));
                }
            }
            if errs.len() == before {
                errs.push(String::new(), vec![], format!("pingora: {whole}"));
            }
            return None;
        }
    };
    let mut ok = true;
    if conf.threads == 0 {
        // Pingora would build a runtime with no worker thread and panic.
        errs.push(
            "threads".into(),
            vec![index_of("threads").unwrap_or(0)],
            "must be at least 1, got 0",
        );
        ok = false;
    }
    match conf.validate() {
        Ok(conf) if ok => Some(conf),
        Ok(_) => None,
        Err(e) => {
            let text = match &e.context {
                Some(context) => context.as_str().to_string(),
                None => e.to_string(),
            };
            let first = text.split_whitespace().next().unwrap_or("");
            match index_of(first) {
                Some(i) => errs.push(first.to_string(), vec![i], text[first.len()..].trim()),
                None => errs.push(String::new(), vec![], format!("pingora: {text}")),
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------
// tether:

const TETHER_KEYS: &[&str] = &[
    "listeners",
    "admin",
    "cookie_keys_file",
    "state_file",
    "max_sessions",
    "decision_header",
    "upstream_timeouts",
    "load_balancers",
    "pools",
    "monitors",
];

/// The string keys of a mapping node, whatever their values (so that a
/// reference to an entry that is itself invalid is not reported twice).
/// `None` when the node is not a mapping: references are then not checked.
fn key_names(node: Option<&Node<'_>>, required: bool) -> Option<BTreeSet<String>> {
    match node.map(|n| n.value) {
        None | Some(Value::Null) if required => None,
        None | Some(Value::Null) => Some(BTreeSet::new()),
        Some(Value::Mapping(m)) => Some(
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => None,
    }
}

fn read_config(node: &Node<'_>, errs: &mut Errors) -> Option<Config> {
    let o = node.object(errs, TETHER_KEYS)?;

    let listeners = o
        .req(errs, "listeners")
        .and_then(|n| read_listeners(n, errs));
    let admin = match o.opt("admin") {
        None => Some(None),
        Some(n) => read_admin(n, errs, &listen_addrs(o.opt("listeners"))).map(Some),
    };
    let cookie_keys_file = match o.opt("cookie_keys_file") {
        None => Some(None),
        Some(n) => n.str(errs).map(|s| {
            errs.defer(n, Check::Readable(PathBuf::from(s)));
            Some(PathBuf::from(s))
        }),
    };
    let state_file = match o.opt("state_file") {
        None => Some(None),
        Some(n) => n.str(errs).and_then(|s| state_path(n, s, errs)).map(Some),
    };
    let max_sessions = o.int_or(errs, "max_sessions", 1, 100_000_000, 1_000_000);
    let decision_header = o.bool_or(errs, "decision_header", false);
    let upstream_timeouts = match o.opt("upstream_timeouts") {
        None => Some(UpstreamTimeouts::default()),
        Some(n) => read_timeouts(n, errs),
    };

    let monitor_names = key_names(o.opt("monitors"), false);
    let pool_names = key_names(o.opt("pools"), true);
    let monitors = match o.opt("monitors") {
        None => Some(BTreeMap::new()),
        Some(n) => read_monitors(n, errs),
    };
    let pools = o
        .req(errs, "pools")
        .and_then(|n| read_pools(n, monitor_names.as_ref(), errs));
    let load_balancers = o
        .req(errs, "load_balancers")
        .and_then(|n| read_load_balancers(n, pool_names.as_ref(), errs));

    Some(Config {
        listeners: listeners?,
        admin: admin?,
        cookie_keys_file: cookie_keys_file?,
        state_file: state_file?,
        max_sessions: max_sessions? as usize,
        decision_header: decision_header?,
        upstream_timeouts: upstream_timeouts?,
        load_balancers: load_balancers?,
        pools: pools?,
        monitors: monitors?,
    })
}

/// The pure part of `state_file`: a file name; its directory is checked
/// after the walk ([`super::checks`]).
fn state_path(node: &Node<'_>, path: &str, errs: &mut Errors) -> Option<PathBuf> {
    if path.is_empty() {
        errs.at(node, "must not be empty");
        return None;
    }
    if path.ends_with('/') {
        errs.at(
            node,
            format!("must name a file, got the directory {}", quote(path)),
        );
        return None;
    }
    errs.defer(node, Check::StateFile(PathBuf::from(path)));
    Some(PathBuf::from(path))
}

fn socket_addr(node: &Node<'_>, errs: &mut Errors) -> Option<(String, SocketAddr)> {
    let s = node.str(errs)?;
    match s.parse::<SocketAddr>() {
        Ok(addr) => Some((s.to_string(), addr)),
        Err(_) => {
            errs.at(
                node,
                format!(
                    "must be an IP address and port such as \"0.0.0.0:8080\" or \"[::1]:8080\", got {}",
                    quote(s)
                ),
            );
            None
        }
    }
}

fn read_listeners(node: &Node<'_>, errs: &mut Errors) -> Option<Vec<Listener>> {
    let items = node.list(errs)?;
    if items.is_empty() {
        errs.at(node, "must list at least one listener");
        return None;
    }
    let mut seen: Vec<(SocketAddr, usize)> = Vec::new();
    all(items
        .iter()
        .enumerate()
        .map(|(i, item)| read_listener(item, i, &mut seen, errs)))
}

fn read_listener(
    node: &Node<'_>,
    index: usize,
    seen: &mut Vec<(SocketAddr, usize)>,
    errs: &mut Errors,
) -> Option<Listener> {
    let o = node.object(errs, &["address", "tls"])?;
    let address = o.req(errs, "address").and_then(|n| {
        let (text, addr) = socket_addr(n, errs)?;
        if let Some((_, j)) = seen.iter().find(|(a, _)| *a == addr) {
            errs.at(
                n,
                format!(
                    "duplicate listener address {} (also listeners[{j}])",
                    quote(&text)
                ),
            );
            return None;
        }
        seen.push((addr, index));
        Some(text)
    });
    let tls = match o.opt("tls") {
        None => Some(None),
        Some(n) => read_tls(n, errs).map(Some),
    };
    Some(Listener {
        address: address?,
        tls: tls?,
    })
}

fn read_tls(node: &Node<'_>, errs: &mut Errors) -> Option<Tls> {
    let o = node.object(errs, &["cert_path", "key_path"])?;
    let mut file = |key: &str| {
        let n = o.req(errs, key)?;
        let s = n.str(errs)?;
        errs.defer(n, Check::Readable(PathBuf::from(s)));
        Some(PathBuf::from(s))
    };
    let cert_path = file("cert_path");
    let key_path = file("key_path");
    Some(Tls {
        cert_path: cert_path?,
        key_path: key_path?,
    })
}

/// The listener addresses that parse, with their index (whatever else is
/// wrong with the listeners: that is reported by [`read_listeners`]).
fn listen_addrs(node: Option<&Node<'_>>) -> Vec<(usize, SocketAddr)> {
    let Some(Value::Sequence(items)) = node.map(|n| n.value) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let addr = item.get("address")?.as_str()?.parse().ok()?;
            Some((i, addr))
        })
        .collect()
}

fn read_admin(
    node: &Node<'_>,
    errs: &mut Errors,
    listeners: &[(usize, SocketAddr)],
) -> Option<Admin> {
    let o = node.object(errs, &["address", "token_file"])?;
    let address = o.req(errs, "address").and_then(|n| {
        let (text, addr) = socket_addr(n, errs)?;
        let clash = listeners.iter().find(|(_, a)| *a == addr).map(|(j, _)| j);
        if let Some(j) = clash {
            errs.at(
                n,
                format!("same address as listeners[{j}], got {}", quote(&text)),
            );
            return None;
        }
        Some(text)
    });
    let token_file = match o.opt("token_file") {
        None => Some(None),
        Some(n) => n.str(errs).map(|s| {
            errs.defer(n, Check::TokenFile(PathBuf::from(s)));
            Some(PathBuf::from(s))
        }),
    };
    Some(Admin {
        address: address?,
        token_file: token_file?,
    })
}

fn read_timeouts(node: &Node<'_>, errs: &mut Errors) -> Option<UpstreamTimeouts> {
    let o = node.object(errs, &["connect", "read", "write", "idle"])?;
    let mut secs = |key: &str, default: f64| {
        o.number_or(errs, key, 0.001, 3600.0, default)
            .map(Duration::from_secs_f64)
    };
    let connect = secs("connect", 5.0);
    let read = secs("read", 100.0);
    let write = secs("write", 100.0);
    let idle = secs("idle", 90.0);
    Some(UpstreamTimeouts {
        connect: connect?,
        read: read?,
        write: write?,
        idle: idle?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    fn conf_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("conf")
            .join(name)
    }

    #[test]
    fn reference_config_loads_and_uses_every_key() {
        let loaded = load_file(&conf_path("tether.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let s = &loaded.server;
        assert_eq!(s.version, 1);
        assert_eq!(s.threads, 2);
        assert_eq!(s.pid_file, "/tmp/tether.pid");
        assert_eq!(s.upgrade_sock, "/tmp/tether_upgrade.sock");
        assert_eq!(s.error_log, None);
        assert_eq!(s.grace_period_seconds, Some(10));
        assert_eq!(s.graceful_shutdown_timeout_seconds, Some(5));
        assert_eq!(s.upstream_keepalive_pool_size, 128);
        assert!(s.work_stealing);

        let t = &loaded.tether;
        assert_eq!(t.listeners.len(), 2);
        assert_eq!(t.listeners[0].address, "0.0.0.0:8080");
        assert_eq!(t.listeners[0].tls, None);
        let tls = t.listeners[1].tls.as_ref().unwrap();
        assert_eq!(tls.cert_path, PathBuf::from("conf/example-cert.pem"));
        assert_eq!(tls.key_path, PathBuf::from("conf/example-key.pem"));
        let admin = t.admin.as_ref().unwrap();
        assert_eq!(admin.address, "127.0.0.1:9180");
        assert_eq!(
            admin.token_file,
            Some(PathBuf::from("conf/example-admin.token"))
        );
        assert_eq!(
            t.cookie_keys_file,
            Some(PathBuf::from("conf/example-cookie.keys"))
        );
        assert_eq!(t.state_file, Some(PathBuf::from("/tmp/tether-state.json")));
        assert_eq!(t.max_sessions, 1_000_000);
        assert!(!t.decision_header);
        assert_eq!(t.upstream_timeouts, UpstreamTimeouts::default());

        let www = &t.load_balancers["www.example.com"];
        assert_eq!(www.name, "www.example.com");
        assert_eq!(www.default_pools, vec!["primary", "secondary"]);
        assert_eq!(www.fallback_pool.as_deref(), Some("fallback"));
        assert_eq!(www.steering_policy, SteeringPolicy::Random);
        assert_eq!(www.random_steering.weight_of("primary"), 0.8);
        assert_eq!(www.random_steering.weight_of("fallback"), 1.0);
        assert_eq!(www.session_affinity, SessionAffinity::Cookie);
        assert_eq!(www.session_affinity_ttl, 82_800);
        let a = &www.session_affinity_attributes;
        assert_eq!(a.samesite, SameSite::Auto);
        assert_eq!(a.secure, Secure::Auto);
        assert_eq!(a.drain_duration, 60);
        assert_eq!(a.zero_downtime_failover, ZeroDowntimeFailover::Temporary);
        assert!(www.adaptive_routing.failover_across_pools);
        assert!(!www.always_use_https);

        let star = &t.load_balancers["*"];
        assert_eq!(star.steering_policy, SteeringPolicy::Off);
        assert_eq!(star.session_affinity, SessionAffinity::Header);
        assert_eq!(
            star.session_affinity_attributes.headers,
            vec!["X-User-Id", "cookie:session,lang"]
        );

        let primary = &t.pools["primary"];
        assert_eq!(primary.monitor.as_deref(), Some("web"));
        assert_eq!(primary.endpoints.len(), 2);
        assert_eq!(primary.endpoints[0].host.as_deref(), Some("app.internal"));
        assert_eq!(
            primary.endpoints[0].socket_addr,
            "127.0.0.1:9001".parse().unwrap()
        );
        assert_eq!(primary.endpoints[1].address, "localhost:9002");
        assert_eq!(primary.endpoints[1].socket_addr.port(), 9002);
        assert_eq!(primary.endpoints[1].weight, 0.5);
        assert_eq!(t.pools["secondary"].origin_steering, OriginSteering::Hash);
        assert_eq!(
            t.pools["fallback"].origin_steering,
            OriginSteering::LeastOutstandingRequests
        );

        let web = &t.monitors["web"];
        assert_eq!(
            web.expected_codes,
            ExpectedCodes(vec![CodePattern::Class(2)])
        );
        assert_eq!(web.header["User-Agent"], vec!["tether-monitor"]);
        assert_eq!(web.interval, Duration::from_secs(60));
        assert_eq!(web.retries, 2);
        assert_eq!(t.monitors["tcp-check"].r#type, MonitorType::Tcp);
    }

    #[test]
    fn demo_config_loads() {
        let loaded = load_file(&conf_path("demo.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.server.threads, 2);
        assert_eq!(loaded.server.pid_file, "/tmp/tether-demo.pid");
        assert_eq!(loaded.server.upgrade_sock, "/tmp/tether-demo_upgrade.sock");
        assert_eq!(loaded.server.grace_period_seconds, Some(1));
        assert_eq!(loaded.server.graceful_shutdown_timeout_seconds, Some(1));
        let t = &loaded.tether;
        assert_eq!(t.listeners[0].address, "127.0.0.1:8080");
        let lb = &t.load_balancers["*"];
        assert_eq!(lb.default_pools, vec!["demo"]);
        assert_eq!(lb.steering_policy, SteeringPolicy::Off);
        assert_eq!(lb.session_affinity, SessionAffinity::None);
        assert_eq!(lb.session_affinity_ttl, 0);
        let pool = &t.pools["demo"];
        let names: Vec<&str> = pool.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["web-1", "web-2", "web-3"]);
        assert_eq!(
            pool.endpoints[2].socket_addr,
            "127.0.0.1:9003".parse().unwrap()
        );
        let m = &t.monitors["demo-health"];
        assert_eq!(m.path, "/health");
        assert_eq!(m.interval, Duration::from_secs(1));
        assert_eq!(m.timeout, Duration::from_millis(500));
        assert_eq!(m.retries, 0);
        assert!(m.expected_codes.matches(200) && !m.expected_codes.matches(204));
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let loaded = ok(MINIMAL);
        assert_eq!(loaded.server.threads, 1);
        let t = loaded.tether;
        assert_eq!(t.admin, None);
        assert_eq!(t.cookie_keys_file, None);
        assert_eq!(t.state_file, None);
        assert_eq!(t.max_sessions, 1_000_000);
        assert!(!t.decision_header);
        assert_eq!(t.upstream_timeouts, UpstreamTimeouts::default());
        assert!(t.monitors.is_empty());
        let lb = &t.load_balancers["*"];
        assert_eq!(
            *lb,
            LoadBalancer {
                name: "*".into(),
                enabled: true,
                default_pools: vec!["primary".into()],
                fallback_pool: None,
                steering_policy: SteeringPolicy::Off,
                random_steering: RandomSteering::default(),
                session_affinity: SessionAffinity::None,
                session_affinity_ttl: 0,
                session_affinity_attributes: SessionAffinityAttributes::default(),
                adaptive_routing: AdaptiveRouting::default(),
                always_use_https: false,
            }
        );
        let pool = &t.pools["primary"];
        assert_eq!(pool.name, "primary");
        assert!(pool.enabled);
        assert_eq!(pool.minimum_origins, 1);
        assert_eq!(pool.monitor, None);
        assert_eq!(pool.origin_steering, OriginSteering::Random);
        assert_eq!(
            pool.endpoints[0],
            Endpoint {
                name: "web-1".into(),
                address: "127.0.0.1:9001".into(),
                socket_addr: "127.0.0.1:9001".parse().unwrap(),
                weight: 1.0,
                enabled: true,
                host: None,
            }
        );
    }

    #[test]
    fn values_are_read() {
        let yaml = r#"
tether:
  listeners: [{ address: "[::1]:8080" }]
  max_sessions: 10
  decision_header: true
  upstream_timeouts: { connect: 0.5, read: 2 }
  load_balancers:
    WWW.Example.COM:
      enabled: false
      default_pools: [b, a]
      fallback_pool: a
      random_steering: { default_weight: 0, pool_weights: { a: 0.25 } }
      session_affinity: ip_cookie
      session_affinity_ttl: 3600
      session_affinity_attributes:
        samesite: None
        secure: Always
        drain_duration: 30
        zero_downtime_failover: sticky
        headers: [cookie]
        require_all_headers: true
      always_use_https: true
  pools:
    a:
      enabled: false
      minimum_origins: 2
      origin_steering: { policy: least_connections }
      endpoints:
        - { name: x, address: "10.0.0.1:80", weight: 0, enabled: false, header: { host: [h.internal] } }
        - { name: y, address: "10.0.0.2:80" }
    b:
      monitor: m
      endpoints: [{ name: x, address: "10.0.0.3:80" }]
  monitors:
    m:
      type: https
      method: HEAD
      path: /ok?full=1
      port: 8443
      expected_codes: 200, 3xx
      expected_body: "All GOOD"
      header: { Host: [a.example], X-Twice: [one, two] }
      interval: 0.2
      timeout: 0.1
      retries: 5
      consecutive_up: 3
      consecutive_down: 100
"#;
        let t = ok(yaml).tether;
        assert_eq!(t.listeners[0].address, "[::1]:8080");
        assert_eq!(t.max_sessions, 10);
        assert!(t.decision_header);
        assert_eq!(t.upstream_timeouts.connect, Duration::from_millis(500));
        assert_eq!(t.upstream_timeouts.read, Duration::from_secs(2));
        assert_eq!(t.upstream_timeouts.idle, Duration::from_secs(90));
        let lb = &t.load_balancers["www.example.com"];
        assert_eq!(lb.name, "www.example.com");
        assert!(!lb.enabled);
        assert_eq!(lb.default_pools, vec!["b", "a"]);
        assert_eq!(lb.random_steering.weight_of("a"), 0.25);
        assert_eq!(lb.random_steering.weight_of("b"), 0.0);
        assert_eq!(lb.session_affinity_ttl, 3600);
        let a = &lb.session_affinity_attributes;
        assert_eq!(
            (
                a.samesite,
                a.secure,
                a.drain_duration,
                a.zero_downtime_failover
            ),
            (
                SameSite::None,
                Secure::Always,
                30,
                ZeroDowntimeFailover::Sticky
            )
        );
        assert!(a.require_all_headers && lb.always_use_https);
        let pa = &t.pools["a"];
        assert!(!pa.enabled);
        assert_eq!(pa.minimum_origins, 2);
        assert_eq!(pa.origin_steering, OriginSteering::LeastConnections);
        assert_eq!(pa.endpoints[0].weight, 0.0);
        assert!(!pa.endpoints[0].enabled);
        assert_eq!(pa.endpoints[0].host.as_deref(), Some("h.internal"));
        let m = &t.monitors["m"];
        assert_eq!(m.r#type, MonitorType::Https);
        assert_eq!(m.method, "HEAD");
        assert_eq!(m.path, "/ok?full=1");
        assert_eq!(m.port, 8443);
        assert_eq!(
            m.expected_codes,
            ExpectedCodes(vec![CodePattern::Exact(200), CodePattern::Class(3)])
        );
        assert_eq!(m.expected_body, "all good");
        assert_eq!(m.header["X-Twice"], vec!["one", "two"]);
        assert_eq!(m.interval, Duration::from_millis(200));
        assert_eq!(m.timeout, Duration::from_millis(100));
        assert_eq!(
            (m.retries, m.consecutive_up, m.consecutive_down),
            (5, 3, 100)
        );
    }

    #[test]
    fn message_styles() {
        let e = errors(&MINIMAL.replace(
            "{ name: web-1, address: \"127.0.0.1:9001\" }",
            "{ name: web-1, address: \"127.0.0.1:9001\", wieght: 1 }",
        ));
        assert_eq!(
            e,
            vec!["tether.pools.primary.endpoints[0].wieght: unknown key (expected one of: name, address, weight, enabled, header)"]
        );

        let e = errors(&(MINIMAL.to_string() + "  max_sessions: many\n"));
        assert_eq!(
            e,
            vec![r#"tether.max_sessions: expected an integer, got a string ("many")"#]
        );

        let e = errors(&MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\", weight: 3 }\n",
        ));
        assert_eq!(
            e,
            vec!["tether.pools.primary.endpoints[1].weight: must be between 0 and 1, got 3"]
        );

        let e = errors(&with_lb("steering_policy: fastest"));
        assert_eq!(
            e,
            vec![
                r#"tether.load_balancers["*"].steering_policy: must be one of "", off, random, least_outstanding_requests, dynamic_latency; got "fastest""#
            ]
        );

        let e = errors(&MINIMAL.replace("name: web-1, address: \"127.0.0.1:9001\"", "name: web-1"));
        assert_eq!(
            e,
            vec!["tether.pools.primary.endpoints[0].address: missing"]
        );

        let e = errors(&MINIMAL.replace("[primary]", "[primary, secndary]"));
        assert_eq!(
            e,
            vec![r#"tether.load_balancers["*"].default_pools[1]: no pool named "secndary""#]
        );

        let e = errors(&MINIMAL.replace("    primary:\n", "    primary:\n      monitor: web2\n"));
        assert_eq!(
            e,
            vec![r#"tether.pools.primary.monitor: no monitor named "web2""#]
        );

        let e = errors(&MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\" }\n        - { name: web-1, address: \"127.0.0.1:9003\" }\n",
        ));
        assert_eq!(
            e,
            vec![
                r#"tether.pools.primary.endpoints[2].name: duplicate endpoint name "web-1" (also endpoints[0])"#
            ]
        );
    }

    #[test]
    fn many_errors_at_once_in_document_order() {
        let yaml = r#"
threads: 2
tether:
  listeners:
    - address: "localhost:8080"
  max_sessions: 0
  load_balancers:
    "*":
      default_pools: [primary, nope]
      session_affinity: cookie
      session_affinity_ttl: 10
      colour: blue
  pools:
    primary:
      minimum_origins: 5
      endpoints:
        - { name: web-1, address: "127.0.0.1:9001", weight: 1.5, wieght: 1 }
        - { address: "127.0.0.1:9002", enabled: "yes" }
  monitors:
    web: { interval: 1, timeout: 2, retries: 9 }
"#;
        assert_eq!(
            errors(yaml),
            vec![
                r#"tether.listeners[0].address: must be an IP address and port such as "0.0.0.0:8080" or "[::1]:8080", got "localhost:8080""#,
                "tether.max_sessions: must be between 1 and 100000000, got 0",
                r#"tether.load_balancers["*"].default_pools[1]: no pool named "nope""#,
                r#"tether.load_balancers["*"].session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie, got 10"#,
                r#"tether.load_balancers["*"].colour: unknown key (expected one of: enabled, default_pools, fallback_pool, steering_policy, random_steering, session_affinity, session_affinity_ttl, session_affinity_attributes, adaptive_routing, always_use_https)"#,
                "tether.pools.primary.minimum_origins: must be between 1 and 2 (the number of endpoints), got 5",
                "tether.pools.primary.endpoints[0].weight: must be between 0 and 1, got 1.5",
                "tether.pools.primary.endpoints[0].wieght: unknown key (expected one of: name, address, weight, enabled, header)",
                r#"tether.pools.primary.endpoints[1].enabled: expected a boolean, got a string ("yes")"#,
                "tether.pools.primary.endpoints[1].name: missing",
                "tether.monitors.web.timeout: must not exceed interval (1), got 2",
                "tether.monitors.web.retries: must be between 0 and 5, got 9",
            ]
        );
    }

    #[test]
    fn pingora_key_errors() {
        let e = errors(&format!("threads: many\n{MINIMAL}"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(r#"threads: invalid type: string "many", expected"#),
            "{e:?}"
        );
        // Pingora and tether errors together, in document order.
        let e = errors(&format!(
            "threads: 0\nwork_stealing: sometimes\n{}",
            MINIMAL.replace("[primary]", "[]")
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("work_stealing: "), "{e:?}");
        assert_eq!(
            e[1],
            r#"tether.load_balancers["*"].default_pools: must list at least one pool"#
        );
        let e = errors(&format!("threads: 0\n{MINIMAL}"));
        assert_eq!(e, vec!["threads: must be at least 1, got 0"]);
        let e = errors(&format!("max_blocking_threads: 0\n{MINIMAL}"));
        assert_eq!(e, vec!["max_blocking_threads: must be greater than zero"]);
        // Unknown top-level keys belong to Pingora, which ignores them.
        ok(&format!("some_other_key: 1\n{MINIMAL}"));
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(
            errors("threads: 2\n"),
            vec!["tether: missing: the file needs a tether: section"]
        );
        let e = errors("tether: [1\n");
        assert!(
            e[0].starts_with("invalid YAML: ") && e[0].contains("line"),
            "{e:?}"
        );
        let e = errors("- 1\n");
        assert_eq!(
            e,
            vec!["the file must be a mapping of keys (Pingora's and tether:), got a list"]
        );
        assert_eq!(
            errors("tether:\n"),
            vec!["tether: expected a mapping, got null"]
        );
        let e = load_file(Path::new("/nonexistent/tether.yaml")).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].path, "");
        assert!(
            e.0[0].message.contains("\"/nonexistent/tether.yaml\""),
            "{e}"
        );
        assert_eq!(
            errors("tether: {}\n"),
            vec![
                "tether.listeners: missing",
                "tether.pools: missing",
                "tether.load_balancers: missing",
            ]
        );
    }

    #[test]
    fn a_state_file_directory_that_cannot_be_written_is_an_error() {
        // /proc refuses new files even to root.
        let yaml = super::super::test_support::MINIMAL.replace(
            "  load_balancers:",
            "  state_file: /proc/tether-state.json\n  load_balancers:",
        );
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(r#"tether.state_file: directory "/proc" is not writable ("#)
                && e[0].ends_with("): run-time changes could not be made durable"),
            "{e:#?}"
        );
    }

    #[test]
    fn listeners_files_and_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  \n").unwrap();
        let yaml = format!(
            r#"
tether:
  listeners:
    - address: "0.0.0.0:8080"
    - address: "0.0.0.0:8080"
      tls: {{ cert_path: /nonexistent/cert.pem, key_path: conf/example-key.pem }}
  admin: {{ address: "0.0.0.0:8080", token_file: "{token}" }}
  cookie_keys_file: /nonexistent/keys
  state_file: /nonexistent/dir/state.json
  load_balancers:
    "*": {{ default_pools: [primary] }}
  pools:
    primary:
      endpoints:
        - {{ name: "web 1", address: "no-such-host.invalid:80" }}
        - {{ name: b, address: "10.0.0.1" }}
        - {{ name: c, address: "10.0.0.1:0" }}
"#,
            token = token.display()
        );
        let e = errors(&yaml);
        let expected_prefixes = [
            r#"tether.listeners[1].address: duplicate listener address "0.0.0.0:8080" (also listeners[0])"#,
            r#"tether.listeners[1].tls.cert_path: cannot read "/nonexistent/cert.pem": "#,
            r#"tether.admin.address: same address as listeners[0], got "0.0.0.0:8080""#,
            r#"tether.admin.token_file: the token file "#,
            r#"tether.cookie_keys_file: cannot read "/nonexistent/keys": "#,
            r#"tether.state_file: directory "/nonexistent/dir" does not exist"#,
            r#"tether.pools.primary.endpoints[0].name: must be non-empty and use only letters"#,
            r#"tether.pools.primary.endpoints[0].address: cannot resolve "no-such-host.invalid:80": "#,
            r#"tether.pools.primary.endpoints[1].address: must be "IP:port" or "hostname:port""#,
            r#"tether.pools.primary.endpoints[2].address: the port must not be 0"#,
        ];
        assert_eq!(e.len(), expected_prefixes.len(), "{e:#?}");
        for (got, want) in e.iter().zip(expected_prefixes) {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}"
            );
        }
    }

    #[test]
    fn endpoint_header_and_random_steering() {
        let yaml = MINIMAL
            .replace(
                "{ name: web-1, address: \"127.0.0.1:9001\" }",
                "{ name: web-1, address: \"127.0.0.1:9001\", header: { Host: [a, b], X-Other: [c] } }",
            )
            .replace(
                "      default_pools: [primary]\n",
                "      default_pools: [primary]\n      random_steering: { default_weight: 2, pool_weights: { ghost: 0.5, primary: -1 } }\n",
            );
        assert_eq!(
            errors(&yaml),
            vec![
                r#"tether.load_balancers["*"].random_steering.default_weight: must be between 0 and 1, got 2"#,
                r#"tether.load_balancers["*"].random_steering.pool_weights.ghost: no pool named "ghost""#,
                r#"tether.load_balancers["*"].random_steering.pool_weights.primary: must be between 0 and 1, got -1"#,
                "tether.pools.primary.endpoints[0].header.Host: must be a list of exactly one host, got 2 items",
                "tether.pools.primary.endpoints[0].header.X-Other: unknown key (expected one of: Host)",
            ]
        );
    }

    #[test]
    fn invalid_pools_are_not_reported_twice() {
        // The pool exists but is invalid: the load balancer's reference is fine.
        let e = errors(&MINIMAL.replace("name: web-1, ", "name: web-1, weight: 9, "));
        assert_eq!(
            e,
            vec!["tether.pools.primary.endpoints[0].weight: must be between 0 and 1, got 9"]
        );
        // No pools at all: only that is reported.
        let e = errors(&MINIMAL.replace("  pools:\n    primary:", "  pols:\n    primary:"));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("tether.pols: unknown key"), "{e:?}");
        assert_eq!(e[1], "tether.pools: missing");
    }

    #[test]
    fn yaml_anchors_and_merge_keys() {
        let yaml = r#"
tether:
  listeners: [{ address: "127.0.0.1:8080" }]
  load_balancers:
    "*": &lb { default_pools: [primary] }
    a.example: { <<: *lb, enabled: false }
  pools:
    primary: { endpoints: [{ name: web-1, address: "127.0.0.1:9001" }] }
"#;
        let t = ok(yaml).tether;
        assert!(!t.load_balancers["a.example"].enabled);
        assert_eq!(t.load_balancers["a.example"].default_pools, vec!["primary"]);
    }

    /// The reference file, cut at every line and at many byte offsets: the
    /// loader answers with a config or with errors, never a panic.
    #[test]
    fn truncated_reference_never_panics() {
        let text = std::fs::read_to_string(conf_path("tether.yaml")).unwrap();
        let mut cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        cuts.extend((0..text.len()).step_by(7));
        for cut in cuts {
            if let Err(errors) = load_str(&text[..text.floor_char_boundary(cut)]) {
                assert!(!errors.0.is_empty(), "an Err carries at least one error");
                assert!(errors.0.iter().all(|e| !e.message.is_empty()));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = load_str(&text);
        }

        /// YAML-shaped noise under `tether:`: keys and values drawn from the
        /// real vocabulary, so the walk goes deep before it fails.
        #[test]
        fn yaml_shaped_noise_never_panics(
            lines in proptest::collection::vec(
                (0usize..6, "(listeners|load_balancers|pools|monitors|endpoints|weight|address|default_pools|session_affinity|headers|-|\\*|x|1e9|-3|\\[\\]|\\{\\}|\"\"|null|true|0\\.5|127\\.0\\.0\\.1:1)",
                 "(: |:|- |, |)",
                 "(\\[a, b\\]|\\{k: v\\}|1|-1|2\\.5|x|\"\\*\"|null|~|)"),
                0..40,
            )
        ) {
            let mut text = String::from("version: 1\ntether:\n");
            for (indent, key, sep, value) in lines {
                text.push_str(&" ".repeat(2 + indent * 2));
                text.push_str(&key);
                text.push_str(&sep);
                text.push_str(&value);
                text.push('\n');
            }
            let _ = load_str(&text);
        }
    }
}
