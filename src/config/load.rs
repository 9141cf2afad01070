//! The file layer: one YAML document, Pingora's keys handed to Pingora's
//! `ServerConf`, everything under `tether:` walked strictly into [`Config`].
//!
//! Every problem is collected (never only the first) with the full key path
//! and reported in document order; see [`super::read`] for the reader and
//! the message styles.

use super::model::*;
use super::read::{describe, fmt_num, join_key, quote, ConfigErrors, Errors, Node};
use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
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

/// Validates a whole configuration document. Relative file paths in it
/// (TLS, token, cookie keys, state) are relative to the working directory.
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
    errs.finish(server.zip(tether))
        .map(|(server, tether)| Loaded { server, tether })
}

/// Validates one load balancer's mapping alone, exactly as the file's
/// `tether.load_balancers.<name>` is (for the admin API's PATCH). `name` is
/// the host it serves (validated, then lower-cased); `pools` are the pools it
/// may name; `path` prefixes every error path (e.g.
/// `tether.load_balancers["www.example.com"]`, or `""` for bare keys).
#[allow(dead_code)]
pub fn load_balancer_from_value(
    name: &str,
    value: &Value,
    pools: &BTreeMap<String, Pool>,
    path: &str,
) -> Result<LoadBalancer, ConfigErrors> {
    let mut errs = Errors::new();
    let node = Node::new(value, path, vec![]);
    let lb_name = check_lb_name(name, &node, &mut errs);
    let names: BTreeSet<String> = pools.keys().cloned().collect();
    let lb = read_load_balancer(&node, lb_name, Some(&names), &mut errs);
    errs.finish(lb)
}

/// The mapping that [`load_balancer_from_value`] turns back into `lb`
/// (every key written out, canonical spellings): read, overlay a change,
/// validate again.
#[allow(dead_code)]
pub fn load_balancer_to_value(lb: &LoadBalancer) -> Value {
    fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }
    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Mapping(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
    }
    let a = &lb.session_affinity_attributes;
    let mut pool_weights = Mapping::new();
    for (pool, w) in &lb.random_steering.pool_weights {
        pool_weights.insert(s(pool), Value::from(*w));
    }
    let mut entries = vec![
        ("enabled", Value::Bool(lb.enabled)),
        (
            "default_pools",
            Value::Sequence(lb.default_pools.iter().map(|p| s(p)).collect()),
        ),
    ];
    if let Some(fallback) = &lb.fallback_pool {
        entries.push(("fallback_pool", s(fallback)));
    }
    entries.extend([
        ("steering_policy", s(steering_name(lb.steering_policy))),
        (
            "random_steering",
            map(vec![
                (
                    "default_weight",
                    Value::from(lb.random_steering.default_weight),
                ),
                ("pool_weights", Value::Mapping(pool_weights)),
            ]),
        ),
        ("session_affinity", s(affinity_name(lb.session_affinity))),
        ("session_affinity_ttl", Value::from(lb.session_affinity_ttl)),
        (
            "session_affinity_attributes",
            map(vec![
                ("samesite", s(samesite_name(a.samesite))),
                ("secure", s(secure_name(a.secure))),
                ("drain_duration", Value::from(a.drain_duration)),
                (
                    "zero_downtime_failover",
                    s(zdf_name(a.zero_downtime_failover)),
                ),
                (
                    "headers",
                    Value::Sequence(a.headers.iter().map(|h| s(h)).collect()),
                ),
                ("require_all_headers", Value::Bool(a.require_all_headers)),
            ]),
        ),
        (
            "adaptive_routing",
            map(vec![(
                "failover_across_pools",
                Value::Bool(lb.adaptive_routing.failover_across_pools),
            )]),
        ),
        ("always_use_https", Value::Bool(lb.always_use_https)),
    ]);
    map(entries)
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

/// Runs every reader (no short-circuit), then keeps the values only if all
/// succeeded.
fn all<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let items: Vec<Option<T>> = items.collect();
    items.into_iter().collect()
}

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
        Some(n) => n
            .str(errs)
            .and_then(|s| readable(n, s, errs).map(|_| PathBuf::from(s)))
            .map(Some),
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

/// The file must be readable now (it is read again later, at start).
fn readable(node: &Node<'_>, path: &str, errs: &mut Errors) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            errs.at(node, format!("cannot read {}: {e}", quote(path)));
            None
        }
    }
}

fn state_path(node: &Node<'_>, path: &str, errs: &mut Errors) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() {
        errs.at(node, "must not be empty");
        return None;
    }
    if p.is_dir() || path.ends_with('/') {
        errs.at(
            node,
            format!("must name a file, got the directory {}", quote(path)),
        );
        return None;
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        errs.at(
            node,
            format!(
                "directory {} does not exist",
                quote(&parent.display().to_string())
            ),
        );
        return None;
    }
    Some(p.to_path_buf())
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
        readable(n, s, errs).map(|_| PathBuf::from(s))
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
        Some(n) => n.str(errs).and_then(|s| {
            let bytes = readable(n, s, errs)?;
            if String::from_utf8_lossy(&bytes).trim().is_empty() {
                errs.at(n, format!("the token file {} is empty", quote(s)));
                return None;
            }
            Some(Some(PathBuf::from(s)))
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

// ---------------------------------------------------------------------------
// load_balancers

const LB_KEYS: &[&str] = &[
    "enabled",
    "default_pools",
    "fallback_pool",
    "steering_policy",
    "random_steering",
    "session_affinity",
    "session_affinity_ttl",
    "session_affinity_attributes",
    "adaptive_routing",
    "always_use_https",
];

const STEERING: &[(&str, SteeringPolicy)] = &[
    ("", SteeringPolicy::Off),
    ("off", SteeringPolicy::Off),
    ("random", SteeringPolicy::Random),
    (
        "least_outstanding_requests",
        SteeringPolicy::LeastOutstandingRequests,
    ),
    ("dynamic_latency", SteeringPolicy::DynamicLatency),
];

const AFFINITY: &[(&str, SessionAffinity)] = &[
    ("", SessionAffinity::None),
    ("none", SessionAffinity::None),
    ("cookie", SessionAffinity::Cookie),
    ("ip_cookie", SessionAffinity::IpCookie),
    ("header", SessionAffinity::Header),
    ("source_ip", SessionAffinity::SourceIp),
];

const SAMESITE: &[(&str, SameSite)] = &[
    ("Auto", SameSite::Auto),
    ("Lax", SameSite::Lax),
    ("Strict", SameSite::Strict),
    ("None", SameSite::None),
];

const SECURE: &[(&str, Secure)] = &[
    ("Auto", Secure::Auto),
    ("Always", Secure::Always),
    ("Never", Secure::Never),
];

const ZERO_DOWNTIME: &[(&str, ZeroDowntimeFailover)] = &[
    ("none", ZeroDowntimeFailover::None),
    ("temporary", ZeroDowntimeFailover::Temporary),
    ("sticky", ZeroDowntimeFailover::Sticky),
];

/// The canonical spelling of a value (the last entry of `table` naming it).
fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .rev()
        .find(|(_, v)| *v == value)
        .map(|(name, _)| *name)
        .unwrap_or("")
}

fn steering_name(v: SteeringPolicy) -> &'static str {
    name_of(STEERING, v)
}
fn affinity_name(v: SessionAffinity) -> &'static str {
    name_of(AFFINITY, v)
}
fn samesite_name(v: SameSite) -> &'static str {
    name_of(SAMESITE, v)
}
fn secure_name(v: Secure) -> &'static str {
    name_of(SECURE, v)
}
fn zdf_name(v: ZeroDowntimeFailover) -> &'static str {
    name_of(ZERO_DOWNTIME, v)
}

/// Default TTL and accepted range per affinity type (SPEC 4.1).
fn ttl_rule(a: SessionAffinity) -> Option<(u64, i64, i64)> {
    match a {
        SessionAffinity::None => None,
        SessionAffinity::Cookie | SessionAffinity::IpCookie => Some((82_800, 1800, 604_800)),
        SessionAffinity::Header | SessionAffinity::SourceIp => Some((1800, 30, 3600)),
    }
}

/// `"*"` or a host name; returns it lower-cased.
fn check_lb_name(name: &str, node: &Node<'_>, errs: &mut Errors) -> Option<String> {
    let host_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if name == "*" || host_ok {
        Some(name.to_ascii_lowercase())
    } else {
        errs.at(
            node,
            format!(
                "a load balancer's name must be \"*\" or a host name (letters, digits, \"-\" and \".\"; no port), got {}",
                quote(name)
            ),
        );
        None
    }
}

fn read_load_balancers(
    node: &Node<'_>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<BTreeMap<String, LoadBalancer>> {
    let entries = node.map(errs)?;
    if entries.is_empty() {
        errs.at(node, "must define at least one load balancer");
        return None;
    }
    let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
    let read: Vec<Option<(String, LoadBalancer)>> = entries
        .iter()
        .map(|(key, n)| {
            let mut name = check_lb_name(key, n, errs);
            if let Some(lower) = &name {
                if let Some(prev) = first_seen.get(lower) {
                    errs.at(
                        n,
                        format!(
                            "duplicate load balancer {} (host names are case-insensitive; also {prev})",
                            quote(lower)
                        ),
                    );
                    name = None;
                } else {
                    first_seen.insert(lower.clone(), join_key("load_balancers", key));
                }
            }
            let lb = read_load_balancer(n, name, pools, errs)?;
            Some((lb.name.clone(), lb))
        })
        .collect();
    read.into_iter().collect()
}

/// A pool named by a load balancer must exist (when the pools are known).
fn pool_ref(
    node: &Node<'_>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<String> {
    let s = node.str(errs)?;
    if let Some(set) = pools {
        if !set.contains(s) {
            errs.at(node, format!("no pool named {}", quote(s)));
            return None;
        }
    }
    Some(s.to_string())
}

fn read_load_balancer(
    node: &Node<'_>,
    name: Option<String>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<LoadBalancer> {
    let o = node.object(errs, LB_KEYS)?;
    let enabled = o.bool_or(errs, "enabled", true);
    let default_pools = o.req(errs, "default_pools").and_then(|n| {
        let items = n.list(errs)?;
        if items.is_empty() {
            errs.at(n, "must list at least one pool");
            return None;
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        all(items.iter().enumerate().map(|(i, item)| {
            let p = pool_ref(item, pools, errs)?;
            if let Some((_, j)) = seen.iter().find(|(q, _)| *q == p) {
                errs.at(
                    item,
                    format!("duplicate pool {} (also default_pools[{j}])", quote(&p)),
                );
                return None;
            }
            seen.push((p.clone(), i));
            Some(p)
        }))
    });
    let fallback_pool = match o.opt("fallback_pool") {
        None => Some(None),
        Some(n) => pool_ref(n, pools, errs).map(Some),
    };
    let steering_policy = o.choice_or(errs, "steering_policy", STEERING, SteeringPolicy::Off);
    let random_steering = match o.opt("random_steering") {
        None => Some(RandomSteering::default()),
        Some(n) => read_random_steering(n, pools, errs),
    };
    let session_affinity = o.choice_or(errs, "session_affinity", AFFINITY, SessionAffinity::None);
    let session_affinity_ttl = match o.opt("session_affinity_ttl") {
        None => session_affinity.map(|a| ttl_rule(a).map_or(0, |(default, _, _)| default)),
        Some(n) => n.int(errs, i64::MIN, i64::MAX).and_then(|ttl| {
            match session_affinity.and_then(ttl_rule) {
                Some((_, lo, hi)) if ttl < lo || ttl > hi => {
                    errs.at(
                        n,
                        format!(
                            "must be between {lo} and {hi} for session_affinity {}, got {ttl}",
                            affinity_name(session_affinity.unwrap_or(SessionAffinity::None))
                        ),
                    );
                    None
                }
                _ if ttl < 0 => {
                    errs.at(n, format!("must not be negative, got {ttl}"));
                    None
                }
                _ => Some(ttl as u64),
            }
        }),
    };
    let adaptive_routing = match o.opt("adaptive_routing") {
        None => Some(AdaptiveRouting::default()),
        Some(n) => n
            .object(errs, &["failover_across_pools"])
            .and_then(|a| a.bool_or(errs, "failover_across_pools", false))
            .map(|failover_across_pools| AdaptiveRouting {
                failover_across_pools,
            }),
    };
    let always_use_https = o.bool_or(errs, "always_use_https", false);
    let session_affinity_attributes = match o.opt("session_affinity_attributes") {
        None if session_affinity == Some(SessionAffinity::Header) => {
            let path = join_key(&o.node.key_path("session_affinity_attributes"), "headers");
            errs.push(path, o.node.end(), HEADERS_REQUIRED);
            None
        }
        None => Some(SessionAffinityAttributes::default()),
        Some(n) => read_attributes(n, session_affinity, always_use_https, errs),
    };

    Some(LoadBalancer {
        name: name?,
        enabled: enabled?,
        default_pools: default_pools?,
        fallback_pool: fallback_pool?,
        steering_policy: steering_policy?,
        random_steering: random_steering?,
        session_affinity: session_affinity?,
        session_affinity_ttl: session_affinity_ttl?,
        session_affinity_attributes: session_affinity_attributes?,
        adaptive_routing: adaptive_routing?,
        always_use_https: always_use_https?,
    })
}

fn read_random_steering(
    node: &Node<'_>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<RandomSteering> {
    let o = node.object(errs, &["default_weight", "pool_weights"])?;
    let default_weight = o.number_or(errs, "default_weight", 0.0, 1.0, 1.0);
    let pool_weights = match o.opt("pool_weights") {
        None => Some(BTreeMap::new()),
        Some(n) => n.map(errs).and_then(|entries| {
            let read: Vec<Option<(String, f64)>> = entries
                .iter()
                .map(|(pool, w)| {
                    let known = match pools {
                        Some(set) if !set.contains(*pool) => {
                            errs.at(w, format!("no pool named {}", quote(pool)));
                            false
                        }
                        _ => true,
                    };
                    let weight = w.number(errs, 0.0, 1.0)?;
                    known.then(|| (pool.to_string(), weight))
                })
                .collect();
            read.into_iter().collect()
        }),
    };
    Some(RandomSteering {
        default_weight: default_weight?,
        pool_weights: pool_weights?,
    })
}

const HEADERS_REQUIRED: &str = "must name at least one header when session_affinity is header";

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `headers` entry: a header name, `cookie`, or `cookie:<name>[,<name>...]`.
fn affinity_header_ok(s: &str) -> bool {
    if s == "cookie" {
        return true;
    }
    if let Some(names) = s.strip_prefix("cookie:") {
        return names
            .split(',')
            .all(|n| !n.is_empty() && n.bytes().all(is_tchar));
    }
    http::HeaderName::from_bytes(s.as_bytes()).is_ok()
}

fn read_attributes(
    node: &Node<'_>,
    affinity: Option<SessionAffinity>,
    always_use_https: Option<bool>,
    errs: &mut Errors,
) -> Option<SessionAffinityAttributes> {
    let o = node.object(
        errs,
        &[
            "samesite",
            "secure",
            "drain_duration",
            "zero_downtime_failover",
            "headers",
            "require_all_headers",
        ],
    )?;
    let samesite = o.choice_or(errs, "samesite", SAMESITE, SameSite::Auto);
    let mut secure = o.choice_or(errs, "secure", SECURE, Secure::Auto);
    if let (Some(Secure::Never), Some(n)) = (secure, o.opt("secure")) {
        let problem = match (samesite, always_use_https) {
            (Some(SameSite::None), _) => Some(
                "must not be Never when samesite is None (browsers reject SameSite=None without Secure)",
            ),
            (Some(SameSite::Auto), Some(true)) => Some(
                "must not be Never when samesite is Auto and always_use_https is true (samesite then means None; browsers reject SameSite=None without Secure)",
            ),
            _ => None,
        };
        if let Some(message) = problem {
            errs.at(n, message);
            secure = None;
        }
    }
    let drain_duration = o.int_or(errs, "drain_duration", 0, 86_400, 0);
    let zero_downtime_failover = o.choice_or(
        errs,
        "zero_downtime_failover",
        ZERO_DOWNTIME,
        ZeroDowntimeFailover::None,
    );
    let headers = match o.opt("headers") {
        None => Some(Vec::new()),
        Some(n) => n.list(errs).and_then(|items| {
            all(items.iter().map(|item| {
                let s = item.str(errs)?;
                if affinity_header_ok(s) {
                    Some(s.to_string())
                } else {
                    errs.at(
                        item,
                        format!(
                            "must be a header name, \"cookie\" or \"cookie:<name>[,<name>...]\", got {}",
                            quote(s)
                        ),
                    );
                    None
                }
            }))
        }),
    };
    let headers = match headers {
        Some(h) if h.is_empty() && affinity == Some(SessionAffinity::Header) => {
            match o.opt("headers") {
                Some(n) => errs.at(n, HEADERS_REQUIRED),
                None => errs.push(o.node.key_path("headers"), o.node.end(), HEADERS_REQUIRED),
            }
            None
        }
        other => other,
    };
    let require_all_headers = o.bool_or(errs, "require_all_headers", false);
    Some(SessionAffinityAttributes {
        samesite: samesite?,
        secure: secure?,
        drain_duration: drain_duration? as u64,
        zero_downtime_failover: zero_downtime_failover?,
        headers: headers?,
        require_all_headers: require_all_headers?,
    })
}

// ---------------------------------------------------------------------------
// pools

const ORIGIN_STEERING: &[(&str, OriginSteering)] = &[
    ("random", OriginSteering::Random),
    ("hash", OriginSteering::Hash),
    (
        "least_outstanding_requests",
        OriginSteering::LeastOutstandingRequests,
    ),
    ("least_connections", OriginSteering::LeastConnections),
];

/// Pool, monitor and endpoint names: `[A-Za-z0-9_.-]+`.
fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_entry_name(kind: &str, name: &str, node: &Node<'_>, errs: &mut Errors) -> bool {
    let ok = name_ok(name);
    if !ok {
        errs.at(
            node,
            format!(
                "a {kind} name must use only letters, digits, \"_\", \".\" and \"-\", got {}",
                quote(name)
            ),
        );
    }
    ok
}

fn read_pools(
    node: &Node<'_>,
    monitors: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<BTreeMap<String, Pool>> {
    let entries = node.map(errs)?;
    if entries.is_empty() {
        errs.at(node, "must define at least one pool");
        return None;
    }
    let read: Vec<Option<(String, Pool)>> = entries
        .iter()
        .map(|(name, n)| {
            let name_ok = check_entry_name("pool", name, n, errs);
            let pool = read_pool(n, name, monitors, errs)?;
            name_ok.then(|| (name.to_string(), pool))
        })
        .collect();
    read.into_iter().collect()
}

fn read_pool(
    node: &Node<'_>,
    name: &str,
    monitors: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<Pool> {
    let o = node.object(
        errs,
        &[
            "enabled",
            "minimum_origins",
            "monitor",
            "origin_steering",
            "endpoints",
        ],
    )?;
    let enabled = o.bool_or(errs, "enabled", true);
    let monitor = match o.opt("monitor") {
        None => Some(None),
        Some(n) => n.str(errs).and_then(|m| match monitors {
            Some(set) if !set.contains(m) => {
                errs.at(n, format!("no monitor named {}", quote(m)));
                None
            }
            _ => Some(Some(m.to_string())),
        }),
    };
    let origin_steering = match o.opt("origin_steering") {
        None => Some(OriginSteering::Random),
        Some(n) => n
            .object(errs, &["policy"])
            .and_then(|s| s.choice_or(errs, "policy", ORIGIN_STEERING, OriginSteering::Random)),
    };
    let endpoint_nodes = o.req(errs, "endpoints").and_then(|n| {
        let items = n.list(errs)?;
        if items.is_empty() {
            errs.at(n, "must list at least one endpoint");
            return None;
        }
        Some(items)
    });
    let count = endpoint_nodes.as_ref().map(Vec::len);
    let endpoints = endpoint_nodes.and_then(|items| {
        let mut seen: Vec<(String, usize)> = Vec::new();
        all(items
            .iter()
            .enumerate()
            .map(|(i, item)| read_endpoint(item, i, &mut seen, errs)))
    });
    let minimum_origins = match o.opt("minimum_origins") {
        None => Some(1),
        Some(n) => n.int(errs, i64::MIN, i64::MAX).and_then(|m| match count {
            Some(c) if m < 1 || m > c as i64 => {
                errs.at(
                    n,
                    format!("must be between 1 and {c} (the number of endpoints), got {m}"),
                );
                None
            }
            None if m < 1 => {
                errs.at(n, format!("must be at least 1, got {m}"));
                None
            }
            _ => Some(m as usize),
        }),
    };
    Some(Pool {
        name: name.to_string(),
        enabled: enabled?,
        minimum_origins: minimum_origins?,
        monitor: monitor?,
        origin_steering: origin_steering?,
        endpoints: endpoints?,
    })
}

fn read_endpoint(
    node: &Node<'_>,
    index: usize,
    seen: &mut Vec<(String, usize)>,
    errs: &mut Errors,
) -> Option<Endpoint> {
    let o = node.object(errs, &["name", "address", "weight", "enabled", "header"])?;
    let name = o.req(errs, "name").and_then(|n| {
        let s = n.str(errs)?;
        if !name_ok(s) {
            errs.at(
                n,
                format!(
                    "must be non-empty and use only letters, digits, \"_\", \".\" and \"-\" (it is written into session cookies), got {}",
                    quote(s)
                ),
            );
            return None;
        }
        if let Some((_, j)) = seen.iter().find(|(other, _)| other == s) {
            errs.at(
                n,
                format!("duplicate endpoint name {} (also endpoints[{j}])", quote(s)),
            );
            return None;
        }
        seen.push((s.to_string(), index));
        Some(s.to_string())
    });
    let address = o.req(errs, "address").and_then(|n| {
        let s = n.str(errs)?;
        resolve(n, s, errs).map(|addr| (s.to_string(), addr))
    });
    let weight = o.number_or(errs, "weight", 0.0, 1.0, 1.0);
    let enabled = o.bool_or(errs, "enabled", true);
    let host = match o.opt("header") {
        None => Some(None),
        Some(n) => read_endpoint_header(n, errs),
    };
    let (address, socket_addr) = address?;
    Some(Endpoint {
        name: name?,
        address,
        socket_addr,
        weight: weight?,
        enabled: enabled?,
        host: host?,
    })
}

/// `header: { Host: ["app.internal"] }` → the Host sent upstream.
fn read_endpoint_header(node: &Node<'_>, errs: &mut Errors) -> Option<Option<String>> {
    let entries = node.map(errs)?;
    let mut host: Option<Option<String>> = Some(None);
    let mut seen_host = false;
    for (key, n) in &entries {
        if !key.eq_ignore_ascii_case("host") {
            errs.at(n, "unknown key (expected one of: Host)");
            host = None;
            continue;
        }
        if seen_host {
            errs.at(n, "duplicate key (Host is given twice)");
            host = None;
            continue;
        }
        seen_host = true;
        let value = n.list(errs).and_then(|items| {
            if items.len() != 1 {
                errs.at(
                    n,
                    format!(
                        "must be a list of exactly one host, got {} items",
                        items.len()
                    ),
                );
                return None;
            }
            let s = items[0].str(errs)?;
            if s.trim().is_empty() || http::HeaderValue::from_str(s).is_err() {
                errs.at(
                    &items[0],
                    format!("not a valid Host header value: {}", quote(s)),
                );
                return None;
            }
            Some(s.to_string())
        });
        host = match (host, value) {
            (Some(_), Some(v)) => Some(Some(v)),
            _ => None,
        };
    }
    host
}

/// `IP:port` as is, else `hostname:port` resolved now (first address).
fn resolve(node: &Node<'_>, s: &str, errs: &mut Errors) -> Option<SocketAddr> {
    let shape = || {
        format!(
            "must be \"IP:port\" or \"hostname:port\" (IPv6 in brackets: \"[::1]:8080\"), got {}",
            quote(s)
        )
    };
    let addr = match s.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let parsed = s
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, _)| !host.is_empty() && !host.contains([':', '[', ']', '/', ' ']));
            let Some((host, port)) = parsed else {
                errs.at(node, shape());
                return None;
            };
            let first = (host, port).to_socket_addrs().map(|mut addrs| addrs.next());
            match first {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    errs.at(node, format!("cannot resolve {}: no addresses", quote(s)));
                    return None;
                }
                Err(e) => {
                    errs.at(node, format!("cannot resolve {}: {e}", quote(s)));
                    return None;
                }
            }
        }
    };
    if addr.port() == 0 {
        errs.at(node, format!("the port must not be 0, got {}", quote(s)));
        return None;
    }
    Some(addr)
}

// ---------------------------------------------------------------------------
// monitors

const MONITOR_KEYS: &[&str] = &[
    "type",
    "method",
    "path",
    "port",
    "expected_codes",
    "expected_body",
    "header",
    "interval",
    "timeout",
    "retries",
    "consecutive_up",
    "consecutive_down",
    "allow_insecure",
];

const MONITOR_TYPES: &[(&str, MonitorType)] = &[
    ("http", MonitorType::Http),
    ("https", MonitorType::Https),
    ("tcp", MonitorType::Tcp),
];

fn read_monitors(node: &Node<'_>, errs: &mut Errors) -> Option<BTreeMap<String, Monitor>> {
    let entries = node.map(errs)?;
    let read: Vec<Option<(String, Monitor)>> = entries
        .iter()
        .map(|(name, n)| {
            let name_ok = check_entry_name("monitor", name, n, errs);
            let monitor = read_monitor(n, name, errs)?;
            name_ok.then(|| (name.to_string(), monitor))
        })
        .collect();
    read.into_iter().collect()
}

/// `"200"`, `"2xx"`, `"200,301"`: codes 100..=599 or classes 1xx..=5xx.
fn parse_codes(s: &str) -> Option<ExpectedCodes> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        let b = item.as_bytes();
        if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
            return None;
        }
        let class = u16::from(b[0] - b'0');
        if b[1..].eq_ignore_ascii_case(b"xx") {
            out.push(CodePattern::Class(class));
        } else if b[1..].iter().all(u8::is_ascii_digit) {
            out.push(CodePattern::Exact(item.parse().ok()?));
        } else {
            return None;
        }
    }
    Some(ExpectedCodes(out))
}

fn read_monitor(node: &Node<'_>, name: &str, errs: &mut Errors) -> Option<Monitor> {
    let o = node.object(errs, MONITOR_KEYS)?;
    let r#type = o.choice_or(errs, "type", MONITOR_TYPES, MonitorType::Http);
    let method = match o.opt("method") {
        None => Some("GET".to_string()),
        Some(n) => n.str(errs).and_then(|m| {
            let token = !m.is_empty() && http::Method::from_bytes(m.as_bytes()).is_ok();
            if token && !m.bytes().any(|b| b.is_ascii_lowercase()) {
                Some(m.to_string())
            } else {
                errs.at(
                    n,
                    format!(
                        "must be an HTTP method in capitals such as GET or HEAD, got {}",
                        quote(m)
                    ),
                );
                None
            }
        }),
    };
    let path = match o.opt("path") {
        None => Some("/".to_string()),
        Some(n) => n.str(errs).and_then(|p| {
            if !p.starts_with('/') {
                errs.at(n, format!("must start with \"/\", got {}", quote(p)));
                None
            } else if p.parse::<http::uri::PathAndQuery>().is_err() {
                errs.at(n, format!("not a valid request path: {}", quote(p)));
                None
            } else {
                Some(p.to_string())
            }
        }),
    };
    let port = o.int_or(errs, "port", 0, 65_535, 0);
    let expected_codes = match o.opt("expected_codes") {
        None => Some(ExpectedCodes(vec![CodePattern::Exact(200)])),
        Some(n) => {
            // `expected_codes: 200` (a YAML integer) reads as "200".
            let text = match n.value {
                Value::Number(num) if num.is_u64() => Some(num.to_string()),
                _ => n.str(errs).map(str::to_string),
            };
            text.and_then(|t| {
                let codes = parse_codes(&t);
                if codes.is_none() {
                    errs.at(
                        n,
                        format!(
                            "must be status codes (100-599) or classes (1xx-5xx) separated by commas, such as \"200\", \"2xx\" or \"200,301\"; got {}",
                            quote(&t)
                        ),
                    );
                }
                codes
            })
        }
    };
    let expected_body = o
        .opt_str(errs, "expected_body")
        .map(|b| b.unwrap_or("").to_lowercase());
    let header = match o.opt("header") {
        None => Some(BTreeMap::new()),
        Some(n) => read_monitor_headers(n, errs),
    };
    let interval = o.number_or(errs, "interval", 0.05, 3600.0, 60.0);
    let timeout = match o.opt("timeout") {
        // Default 5 s, but never more than the interval.
        None => interval.map(|i| i.min(5.0)),
        Some(n) => n.number(errs, 0.05, 3600.0).and_then(|t| match interval {
            Some(i) if t > i => {
                errs.at(
                    n,
                    format!(
                        "must not exceed interval ({}), got {}",
                        fmt_num(i),
                        fmt_num(t)
                    ),
                );
                None
            }
            _ => Some(t),
        }),
    };
    let retries = o.int_or(errs, "retries", 0, 5, 2);
    let consecutive_up = o.int_or(errs, "consecutive_up", 1, 100, 1);
    let consecutive_down = o.int_or(errs, "consecutive_down", 1, 100, 1);
    let allow_insecure = o.bool_or(errs, "allow_insecure", false);
    Some(Monitor {
        name: name.to_string(),
        r#type: r#type?,
        method: method?,
        path: path?,
        port: port? as u16,
        expected_codes: expected_codes?,
        expected_body: expected_body?,
        header: header?,
        interval: Duration::from_secs_f64(interval?),
        timeout: Duration::from_secs_f64(timeout?),
        retries: retries? as u32,
        consecutive_up: consecutive_up? as u32,
        consecutive_down: consecutive_down? as u32,
        allow_insecure: allow_insecure?,
    })
}

fn read_monitor_headers(
    node: &Node<'_>,
    errs: &mut Errors,
) -> Option<BTreeMap<String, Vec<String>>> {
    let entries = node.map(errs)?;
    let read: Vec<Option<(String, Vec<String>)>> = entries
        .iter()
        .map(|(key, n)| {
            let name_ok = http::HeaderName::from_bytes(key.as_bytes()).is_ok();
            if !name_ok {
                errs.at(n, "not a valid HTTP header name");
            }
            let values = n.list(errs).and_then(|items| {
                if items.is_empty() {
                    errs.at(n, "must list at least one value");
                    return None;
                }
                all(items.iter().map(|item| {
                    let s = item.str(errs)?;
                    if http::HeaderValue::from_str(s).is_err() {
                        errs.at(item, format!("not a valid header value: {}", quote(s)));
                        return None;
                    }
                    Some(s.to_string())
                }))
            })?;
            name_ok.then(|| (key.to_string(), values))
        })
        .collect();
    read.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
tether:
  listeners:
    - address: "127.0.0.1:8080"
  load_balancers:
    "*":
      default_pools: [primary]
  pools:
    primary:
      endpoints:
        - { name: web-1, address: "127.0.0.1:9001" }
"#;

    fn conf_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("conf")
            .join(name)
    }

    fn errors(yaml: &str) -> Vec<String> {
        match load_str(yaml) {
            Ok(_) => panic!("expected errors, the configuration loaded:\n{yaml}"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The minimal file with one load balancer's extra lines (indented 6).
    fn with_lb(lines: &str) -> String {
        let lines: String = lines.lines().map(|l| format!("      {l}\n")).collect();
        MINIMAL.replace(
            "      default_pools: [primary]\n",
            &format!("      default_pools: [primary]\n{lines}"),
        )
    }

    fn ok(yaml: &str) -> Loaded {
        load_str(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
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
    fn monitor_defaults() {
        let yaml = MINIMAL.to_string() + "  monitors:\n    m: {}\n    quick: { interval: 2 }\n";
        let t = ok(&yaml).tether;
        let m = &t.monitors["m"];
        assert_eq!(
            *m,
            Monitor {
                name: "m".into(),
                r#type: MonitorType::Http,
                method: "GET".into(),
                path: "/".into(),
                port: 0,
                expected_codes: ExpectedCodes(vec![CodePattern::Exact(200)]),
                expected_body: String::new(),
                header: BTreeMap::new(),
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(5),
                retries: 2,
                consecutive_up: 1,
                consecutive_down: 1,
                allow_insecure: false,
            }
        );
        // The default timeout never exceeds the interval.
        assert_eq!(t.monitors["quick"].timeout, Duration::from_secs(2));
    }

    #[test]
    fn ttl_defaults_depend_on_the_affinity_type() {
        for (affinity, ttl) in [
            ("cookie", 82_800),
            ("ip_cookie", 82_800),
            (
                "header\nsession_affinity_attributes: { headers: [X-User] }",
                1800,
            ),
            ("source_ip", 1800),
            ("none", 0),
            ("\"\"", 0),
        ] {
            let t = ok(&with_lb(&format!("session_affinity: {affinity}"))).tether;
            assert_eq!(
                t.load_balancers["*"].session_affinity_ttl, ttl,
                "{affinity}"
            );
        }
        // Given with none: kept as written, not range-checked.
        let t = ok(&with_lb("session_affinity_ttl: 5")).tether;
        assert_eq!(t.load_balancers["*"].session_affinity_ttl, 5);
        let t = ok(&with_lb(
            "session_affinity: source_ip\nsession_affinity_ttl: 30",
        ))
        .tether;
        assert_eq!(t.load_balancers["*"].session_affinity_ttl, 30);
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
    fn quoted_keys_in_paths() {
        let yaml = MINIMAL.replace(
            "    \"*\":\n      default_pools: [primary]\n",
            "    www.example.com:\n      default_pools: [primary, secndary]\n    \"*\":\n      enabled: maybe\n      default_pools: [primary]\n    \"bad host:80\":\n      default_pools: [primary]\n",
        );
        assert_eq!(
            errors(&yaml),
            vec![
                r#"tether.load_balancers["www.example.com"].default_pools[1]: no pool named "secndary""#,
                r#"tether.load_balancers["*"].enabled: expected a boolean, got a string ("maybe")"#,
                r#"tether.load_balancers["bad host:80"]: a load balancer's name must be "*" or a host name (letters, digits, "-" and "."; no port), got "bad host:80""#,
            ]
        );
        let yaml = MINIMAL.replace(
            "    \"*\":\n",
            "    Example.com:\n      default_pools: [primary]\n    example.COM:\n",
        );
        assert_eq!(
            errors(&yaml),
            vec![
                r#"tether.load_balancers["example.COM"]: duplicate load balancer "example.com" (host names are case-insensitive; also load_balancers["Example.com"])"#
            ]
        );
    }

    #[test]
    fn samesite_none_needs_secure() {
        let e = errors(&with_lb(
            "session_affinity: cookie\nsession_affinity_attributes: { samesite: None, secure: Never }",
        ));
        assert_eq!(
            e,
            vec![
                r#"tether.load_balancers["*"].session_affinity_attributes.secure: must not be Never when samesite is None (browsers reject SameSite=None without Secure)"#
            ]
        );
        let e = errors(&with_lb(
            "session_affinity: cookie\nalways_use_https: true\nsession_affinity_attributes: { secure: Never }",
        ));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("secure: must not be Never when samesite is Auto"),
            "{e:?}"
        );
        ok(&with_lb(
            "session_affinity: cookie\nsession_affinity_attributes: { samesite: Lax, secure: Never }",
        ));
        ok(&with_lb(
            "session_affinity: cookie\nsession_affinity_attributes: { samesite: None, secure: Auto }",
        ));
        let e = errors(&with_lb("session_affinity_attributes: { samesite: lax }"));
        assert_eq!(
            e,
            vec![
                r#"tether.load_balancers["*"].session_affinity_attributes.samesite: must be one of Auto, Lax, Strict, None; got "lax""#
            ]
        );
    }

    #[test]
    fn header_affinity_needs_headers() {
        let msg = r#"tether.load_balancers["*"].session_affinity_attributes.headers: must name at least one header when session_affinity is header"#;
        assert_eq!(errors(&with_lb("session_affinity: header")), vec![msg]);
        assert_eq!(
            errors(&with_lb(
                "session_affinity: header\nsession_affinity_attributes: { drain_duration: 5 }"
            )),
            vec![msg]
        );
        assert_eq!(
            errors(&with_lb(
                "session_affinity: header\nsession_affinity_attributes: { headers: [] }"
            )),
            vec![msg]
        );
        let t = ok(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { headers: [X-User, cookie, \"cookie:a,b\"] }",
        ))
        .tether;
        assert_eq!(
            t.load_balancers["*"].session_affinity_attributes.headers,
            vec!["X-User", "cookie", "cookie:a,b"]
        );
        let e = errors(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { headers: [\"X User\", \"cookie:\", \"cookie:a,,b\"] }",
        ));
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(
            e[0],
            r#"tether.load_balancers["*"].session_affinity_attributes.headers[0]: must be a header name, "cookie" or "cookie:<name>[,<name>...]", got "X User""#
        );
        let e = errors(&with_lb("session_affinity: header\nsession_affinity_ttl: 10\nsession_affinity_attributes: { headers: [X-User] }"));
        assert_eq!(
            e,
            vec![
                r#"tether.load_balancers["*"].session_affinity_ttl: must be between 30 and 3600 for session_affinity header, got 10"#
            ]
        );
    }

    #[test]
    fn minimum_origins_bound() {
        let three = MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\" }\n        - { name: web-3, address: \"127.0.0.1:9003\" }\n",
        );
        let with = |n: &str| {
            three.replace(
                "    primary:\n",
                &format!("    primary:\n      minimum_origins: {n}\n"),
            )
        };
        assert_eq!(
            errors(&with("5")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 5"]
        );
        assert_eq!(
            errors(&with("0")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 0"]
        );
        assert_eq!(ok(&with("3")).tether.pools["primary"].minimum_origins, 3);
        assert_eq!(
            errors(&with("1.5")),
            vec!["tether.pools.primary.minimum_origins: expected an integer, got a number (1.5)"]
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
    fn monitor_checks() {
        let yaml = MINIMAL.to_string()
            + r#"  monitors:
    m:
      type: grpc
      method: get
      path: health
      port: 70000
      expected_codes: "2xx,600,abc"
      header: { "Bad Header": [x], X-Ok: [] }
      interval: 0.01
    "bad name!": {}
"#;
        assert_eq!(
            errors(&yaml),
            vec![
                r#"tether.monitors.m.type: must be one of http, https, tcp; got "grpc""#,
                r#"tether.monitors.m.method: must be an HTTP method in capitals such as GET or HEAD, got "get""#,
                r#"tether.monitors.m.path: must start with "/", got "health""#,
                "tether.monitors.m.port: must be between 0 and 65535, got 70000",
                r#"tether.monitors.m.expected_codes: must be status codes (100-599) or classes (1xx-5xx) separated by commas, such as "200", "2xx" or "200,301"; got "2xx,600,abc""#,
                r#"tether.monitors.m.header["Bad Header"]: not a valid HTTP header name"#,
                "tether.monitors.m.header.X-Ok: must list at least one value",
                "tether.monitors.m.interval: must be between 0.05 and 3600, got 0.01",
                r#"tether.monitors["bad name!"]: a monitor name must use only letters, digits, "_", "." and "-", got "bad name!""#,
            ]
        );
        let t = ok(&(MINIMAL.to_string() + "  monitors:\n    m: { expected_codes: 204 }\n")).tether;
        assert!(t.monitors["m"].expected_codes.matches(204));
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
    fn one_load_balancer_validated_alone() {
        let t = ok(&with_lb(
            "session_affinity: cookie\nfallback_pool: primary\nrandom_steering: { pool_weights: { primary: 0.5 } }\nsession_affinity_attributes: { headers: [X-A] }",
        ))
        .tether;
        let lb = &t.load_balancers["*"];
        // Round trip: the value written back validates to the same thing.
        let value = load_balancer_to_value(lb);
        let again = load_balancer_from_value("*", &value, &t.pools, "tether.load_balancers[\"*\"]")
            .unwrap();
        assert_eq!(&again, lb);

        // A change validated as the file is.
        let mut changed = value.clone();
        changed["session_affinity"] = Value::from("header");
        changed["session_affinity_ttl"] = Value::from(10);
        changed["default_pools"] = Value::from(vec!["primary", "gone"]);
        let e = load_balancer_from_value("Www.Example.com", &changed, &t.pools, "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            [
                r#"default_pools[1]: no pool named "gone""#,
                "session_affinity_ttl: must be between 30 and 3600 for session_affinity header, got 10",
            ]
            .join("\n")
        );
        let lb = load_balancer_from_value("Www.Example.com", &value, &t.pools, "").unwrap();
        assert_eq!(lb.name, "www.example.com");
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
}
