//! The file layer: one YAML document, Pingora's keys handed to Pingora's
//! `ServerConf`, everything under `tether:` walked strictly into [`Config`].
//!
//! Every problem is collected (never only the first) with the full key path
//! and reported in document order; see [`super::read`] for the reader and
//! the message styles. This file reads Pingora's part and the top-level
//! `tether:` keys; the sections have their own files
//! ([`super::load_balancer`], [`super::pool`], [`super::monitor`]).

use super::cluster::{check_cookie_keys, read_cluster};
use super::load_balancer::read_load_balancers;
use super::model::*;
use super::monitor::read_monitors;
use super::pool::read_pools;
use super::read::{all, describe, quote, Check, ConfigErrors, Deferred, Errors, Node, Obj};
use super::spelling::Spelled;
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
    load_str_checking(yaml, |_| true)
}

/// As [`load_str`], running only the deferred checks `run_check` selects
/// (by the key path that asked, [`Deferred::path`]): the others are left
/// undone, and what they would have loaded (an endpoint's resolved
/// `socket_addr`, a pool's `tls.loaded`) is left at its default for the
/// caller to fill in ([`super::objects::with_entries`]).
pub fn load_str_checking(
    yaml: &str,
    run_check: impl Fn(&Deferred) -> bool,
) -> Result<Loaded, ConfigErrors> {
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
    let mut deferred = errs.take_deferred();
    deferred.retain(|d| run_check(d));
    super::checks::run(deferred, loaded.as_mut().map(|l| &mut l.tether), &mut errs);
    errs.finish(loaded)
}

// ---------------------------------------------------------------------------
// Pingora's part

/// `grace_period_seconds` when the file does not set it: how long a
/// graceful stop (SIGTERM, or SIGQUIT after an upgrade) keeps serving
/// in-flight requests before the runtimes are stopped. Pingora's own default
/// is 300 s, slept in full even when nothing is in flight.
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 30;
/// `graceful_shutdown_timeout_seconds` when the file does not set it: how long
/// the runtimes get to finish after the grace period.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: u64 = 10;

fn read_pingora(top: &Mapping, errs: &mut Errors) -> Option<ServerConf> {
    let index_of = |key: &str| top.iter().position(|(k, _)| k.as_str() == Some(key));
    let key_name = |k: &Value| match k {
        Value::String(s) => s.clone(),
        other => describe(other),
    };
    let mut rest = top.clone();
    rest.remove("tether");
    // Tether's default, not Pingora's: per-thread runtimes (measured cheaper
    // per request at 1 and 2 threads, docs/benchmarks.md#pingora-settings).
    if !rest.contains_key("work_stealing") {
        rest.insert("work_stealing".into(), Value::Bool(false));
    }
    // Tether's defaults, not Pingora's 300 s grace period (which a stop
    // sleeps in full): docs/operations.md#stopping.
    for (key, seconds) in [
        ("grace_period_seconds", DEFAULT_GRACE_PERIOD_SECONDS),
        (
            "graceful_shutdown_timeout_seconds",
            DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS,
        ),
    ] {
        if !rest.contains_key(key) {
            rest.insert(key.into(), Value::Number(seconds.into()));
        }
    }
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
    "client_limits",
    "access_log",
    "dns_refresh",
    "upgraded_connections",
    "load_balancers",
    "pools",
    "monitors",
    "cluster",
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
    let max_sessions = o.int_or(
        errs,
        "max_sessions",
        1,
        100_000_000,
        DEFAULT_MAX_SESSIONS as i64,
    );
    let decision_header = o.bool_or(errs, "decision_header", false);
    let upstream_timeouts = match o.opt("upstream_timeouts") {
        None => Some(UpstreamTimeouts::default()),
        Some(n) => read_timeouts(n, errs),
    };
    let client_limits = match o.opt("client_limits") {
        None => Some(ClientLimits::default()),
        Some(n) => read_client_limits(n, errs),
    };
    let dns_refresh = o
        .number_or(
            errs,
            "dns_refresh",
            0.1,
            86_400.0,
            DEFAULT_DNS_REFRESH.as_secs_f64(),
        )
        .map(Duration::from_secs_f64);
    let upgraded_connections = match o.opt("upgraded_connections") {
        None => Some(UpgradedConnections::default()),
        Some(n) => read_upgraded_connections(n, errs),
    };
    let access_log = match o.opt("access_log") {
        None => Some(AccessLog::default()),
        Some(n) => read_access_log(n, errs),
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
    let cluster = match o.opt("cluster") {
        None => Some(None),
        Some(n) => read_cluster(n, errs).map(Some),
    };
    if let (Some(Some(_)), Some(lbs), Some(None)) = (&cluster, &load_balancers, &cookie_keys_file) {
        check_cookie_keys(o.opt("load_balancers"), lbs, errs);
    }

    Some(Config {
        listeners: listeners?,
        admin: admin?,
        cookie_keys_file: cookie_keys_file?,
        state_file: state_file?,
        max_sessions: max_sessions? as usize,
        decision_header: decision_header?,
        upstream_timeouts: upstream_timeouts?,
        client_limits: client_limits?,
        access_log: access_log?,
        dns_refresh: dns_refresh?,
        upgraded_connections: upgraded_connections?,
        load_balancers: load_balancers?,
        pools: pools?,
        monitors: monitors?,
        cluster: cluster?,
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

/// `tls`: the one-certificate shorthand `{cert_path, key_path}` or
/// `certificates: [{cert_path, key_path}, …]` (chosen by SNI), not both.
fn read_tls(node: &Node<'_>, errs: &mut Errors) -> Option<Tls> {
    let o = node.object(errs, &["cert_path", "key_path", "certificates"])?;
    let Some(list) = o.opt("certificates") else {
        return read_certificate_files(&o, errs).map(|c| Tls::single(c.cert_path, c.key_path));
    };
    if let Some(n) = o.opt("cert_path").or_else(|| o.opt("key_path")) {
        errs.at(
            n,
            format!(
                "give either cert_path and key_path (one certificate) or {} (several), not both",
                list.path
            ),
        );
        return None;
    }
    let items = list.list(errs)?;
    if items.is_empty() {
        errs.at(list, "must list at least one certificate");
        return None;
    }
    let certificates = all(items.iter().map(|item| {
        let o = item.object(errs, &["cert_path", "key_path"])?;
        read_certificate_files(&o, errs)
    }));
    Some(Tls::list(certificates?))
}

fn read_certificate_files(o: &Obj<'_>, errs: &mut Errors) -> Option<CertificateFiles> {
    let mut file = |key: &str| {
        let n = o.req(errs, key)?;
        let s = n.str(errs)?;
        errs.defer(n, Check::Readable(PathBuf::from(s)));
        Some(PathBuf::from(s))
    };
    let cert_path = file("cert_path");
    let key_path = file("key_path");
    Some(CertificateFiles {
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

fn read_client_limits(node: &Node<'_>, errs: &mut Errors) -> Option<ClientLimits> {
    let d = ClientLimits::default();
    let o = node.object(
        errs,
        &[
            "max_connections",
            "header_timeout",
            "idle_timeout",
            "max_request_header_bytes",
            "body_timeout",
            "min_body_rate",
        ],
    )?;
    let max_connections = o.int_or(
        errs,
        "max_connections",
        1,
        10_000_000,
        d.max_connections as i64,
    );
    let mut secs = |key: &str, default: Duration| {
        o.number_or(errs, key, 0.001, 3600.0, default.as_secs_f64())
            .map(Duration::from_secs_f64)
    };
    let header_timeout = secs("header_timeout", d.header_timeout);
    let idle_timeout = secs("idle_timeout", d.idle_timeout);
    let body_timeout = secs("body_timeout", d.body_timeout);
    let max_request_header_bytes = o.int_or(
        errs,
        "max_request_header_bytes",
        1024,
        1_048_575,
        d.max_request_header_bytes as i64,
    );
    let min_body_rate = o.int_or(
        errs,
        "min_body_rate",
        0,
        1_000_000_000,
        d.min_body_rate as i64,
    );
    Some(ClientLimits {
        max_connections: max_connections? as usize,
        header_timeout: header_timeout?,
        idle_timeout: idle_timeout?,
        max_request_header_bytes: max_request_header_bytes? as usize,
        body_timeout: body_timeout?,
        min_body_rate: min_body_rate? as u64,
    })
}

fn read_access_log(node: &Node<'_>, errs: &mut Errors) -> Option<AccessLog> {
    let o = node.object(errs, &["format"])?;
    let format = o.choice_or(
        errs,
        "format",
        AccessLogFormat::SPELLINGS,
        AccessLogFormat::Text,
    );
    Some(AccessLog { format: format? })
}

/// `tether.upgraded_connections`: `close_grace` in seconds, 0 ..= 86400.
fn read_upgraded_connections(node: &Node<'_>, errs: &mut Errors) -> Option<UpgradedConnections> {
    let o = node.object(errs, &["close_grace"])?;
    let close_grace = o
        .number_or(errs, "close_grace", 0.0, 86_400.0, 0.0)
        .map(Duration::from_secs_f64)?;
    Some(UpgradedConnections { close_grace })
}

fn read_timeouts(node: &Node<'_>, errs: &mut Errors) -> Option<UpstreamTimeouts> {
    let o = node.object(errs, &["connect", "read", "write", "idle"])?;
    let mut secs = |key: &str, default: f64| {
        o.number_or(errs, key, 0.001, 3600.0, default)
            .map(Duration::from_secs_f64)
    };
    let d = UpstreamTimeouts::default();
    let connect = secs("connect", d.connect.as_secs_f64());
    let read = secs("read", d.read.as_secs_f64());
    let write = secs("write", d.write.as_secs_f64());
    let idle = secs("idle", d.idle.as_secs_f64());
    Some(UpstreamTimeouts {
        connect: connect?,
        read: read?,
        write: write?,
        idle: idle?,
    })
}
