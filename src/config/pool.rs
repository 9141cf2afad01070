//! The `tether.pools` section: pools, their endpoints, and endpoint
//! addresses (resolved at load).

use super::model::*;
use super::read::{all, check_entry_name, name_ok, quote, Check, Errors, Node};
use super::spelling::Spelled;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

pub(super) fn read_pools(
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
            "load_shedding",
            "outlier_detection",
            "slow_start",
            "read_timeout",
            "tls",
            "protocol",
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
        Some(n) => n.object(errs, &["policy"]).and_then(|s| {
            s.choice_or(
                errs,
                "policy",
                OriginSteering::SPELLINGS,
                OriginSteering::Random,
            )
        }),
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
            .map(|(i, item)| read_endpoint(item, name, i, &mut seen, errs)))
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
    let load_shedding = match o.opt("load_shedding") {
        None => Some(LoadShedding::default()),
        Some(n) => read_load_shedding(n, errs),
    };
    let outlier_detection = match o.opt("outlier_detection") {
        None => Some(None),
        Some(n) => read_outlier_detection(n, errs).map(Some),
    };
    let slow_start = o.int_or(errs, "slow_start", 0, 3600, 0);
    // As `tether.upstream_timeouts.read`, for this pool's endpoints only.
    let read_timeout = match o.opt("read_timeout") {
        None => Some(None),
        Some(n) => n
            .number(errs, 0.001, 86_400.0)
            .map(|s| Some(std::time::Duration::from_secs_f64(s))),
    };
    let tls = match o.opt("tls") {
        None => Some(None),
        Some(n) => read_pool_tls(n, name, errs).map(Some),
    };
    let protocol = o.choice_or(
        errs,
        "protocol",
        OriginProtocol::SPELLINGS,
        OriginProtocol::Http1,
    );
    if let (Some(OriginProtocol::H2), Some(None), Some(n)) =
        (protocol, tls.as_ref(), o.opt("protocol"))
    {
        errs.at(
            n,
            "h2 is HTTP/2 over TLS and needs the pool's tls (h2c: HTTP/2 in plaintext)",
        );
        return None;
    }
    Some(Pool {
        protocol: protocol?,
        tls: tls?,
        read_timeout: read_timeout?,
        slow_start: std::time::Duration::from_secs(u64::try_from(slow_start?).unwrap_or(0)),
        load_shedding: load_shedding?,
        outlier_detection: outlier_detection?,
        name: name.to_string(),
        enabled: enabled?,
        minimum_origins: minimum_origins?,
        monitor: monitor?,
        origin_steering: origin_steering?,
        endpoints: endpoints?,
    })
}

/// `tls`: HTTPS to the endpoints. The files are read after the walk
/// (`Check::OriginCa`, `Check::OriginClientCert`), into `PoolTls::loaded`.
fn read_pool_tls(node: &Node<'_>, pool: &str, errs: &mut Errors) -> Option<PoolTls> {
    let o = node.object(
        errs,
        &[
            "verify",
            "ca_path",
            "server_name",
            "client_cert_path",
            "client_key_path",
        ],
    )?;
    let verify = o.bool_or(errs, "verify", true);
    let ca_path = match o.opt("ca_path") {
        None => Some(None),
        Some(n) => n.str(errs).map(|s| {
            errs.defer(
                n,
                Check::OriginCa {
                    file: PathBuf::from(s),
                    pool: pool.to_string(),
                },
            );
            Some(PathBuf::from(s))
        }),
    };
    let server_name = match o.opt("server_name") {
        None => Some(None),
        Some(n) => read_server_name(n, errs).map(Some),
    };
    let cert = o.opt_str(errs, "client_cert_path");
    let key = o.opt_str(errs, "client_key_path");
    let pair = match (cert?, key?) {
        (None, None) => Some((None, None)),
        (Some(c), Some(k)) => {
            if let Some(n) = o.opt("client_cert_path") {
                errs.defer(n, Check::Readable(PathBuf::from(c)));
            }
            if let Some(n) = o.opt("client_key_path") {
                errs.defer(
                    n,
                    Check::OriginClientCert {
                        cert: PathBuf::from(c),
                        key: PathBuf::from(k),
                        pool: pool.to_string(),
                    },
                );
            }
            Some((Some(PathBuf::from(c)), Some(PathBuf::from(k))))
        }
        (Some(_), None) => {
            errs.at(node, "client_cert_path needs client_key_path");
            None
        }
        (None, Some(_)) => {
            errs.at(node, "client_key_path needs client_cert_path");
            None
        }
    };
    let (client_cert_path, client_key_path) = pair?;
    Some(PoolTls {
        verify: verify?,
        ca_path: ca_path?,
        server_name: server_name?,
        client_cert_path,
        client_key_path,
        loaded: LoadedTls::default(),
    })
}

/// A TLS server name: a DNS name or an IP address, as rustls takes it.
fn read_server_name(node: &Node<'_>, errs: &mut Errors) -> Option<String> {
    let s = node.str(errs)?;
    if pingora::tls::ServerName::try_from(s).is_err() {
        errs.at(
            node,
            format!("must be a DNS name or an IP address, got {}", quote(s)),
        );
        return None;
    }
    Some(s.to_string())
}

/// `outlier_detection` (passive health).
fn read_outlier_detection(node: &Node<'_>, errs: &mut Errors) -> Option<OutlierDetection> {
    let o = node.object(
        errs,
        &[
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "base_ejection_time",
            "max_ejection_percent",
        ],
    )?;
    let c5xx = o.int_or(errs, "consecutive_5xx", 0, 1000, 5);
    let cgw = o.int_or(errs, "consecutive_gateway_failure", 0, 1000, 3);
    let base = o.int_or(errs, "base_ejection_time", 1, 3600, 30);
    let max = o.number_or(errs, "max_ejection_percent", 0.0, 100.0, 50.0);
    Some(OutlierDetection {
        consecutive_5xx: u32::try_from(c5xx?).unwrap_or(5),
        consecutive_gateway_failure: u32::try_from(cgw?).unwrap_or(3),
        base_ejection_time: std::time::Duration::from_secs(u64::try_from(base?).unwrap_or(30)),
        max_ejection_percent: max?,
    })
}

/// Cloudflare's `load_shedding` object.
fn read_load_shedding(node: &Node<'_>, errs: &mut Errors) -> Option<LoadShedding> {
    let o = node.object(
        errs,
        &[
            "default_percent",
            "default_policy",
            "session_percent",
            "session_policy",
        ],
    )?;
    let default_percent = o.number_or(errs, "default_percent", 0.0, 100.0, 0.0);
    let default_policy = o.choice_or(
        errs,
        "default_policy",
        ShedPolicy::SPELLINGS,
        ShedPolicy::Random,
    );
    let session_percent = o.number_or(errs, "session_percent", 0.0, 100.0, 0.0);
    let session_policy = o.choice_or(
        errs,
        "session_policy",
        &[("hash", ShedPolicy::Hash)],
        ShedPolicy::Hash,
    );
    Some(LoadShedding {
        default_percent: default_percent?,
        default_policy: default_policy?,
        session_percent: session_percent?,
        session_policy: session_policy?,
    })
}

fn read_endpoint(
    node: &Node<'_>,
    pool: &str,
    index: usize,
    seen: &mut Vec<(String, usize)>,
    errs: &mut Errors,
) -> Option<Endpoint> {
    let o = node.object(
        errs,
        &[
            "name",
            "address",
            "weight",
            "enabled",
            "header",
            "server_name",
        ],
    )?;
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
        let addr = address(n, s, errs)?;
        if s.parse::<SocketAddr>().is_err() {
            errs.defer(
                n,
                Check::Resolve {
                    address: s.to_string(),
                    pool: pool.to_string(),
                    endpoint: index,
                },
            );
        }
        Some((s.to_string(), addr))
    });
    let weight = o.number_or(errs, "weight", 0.0, 1.0, 1.0);
    let enabled = o.bool_or(errs, "enabled", true);
    let host = match o.opt("header") {
        None => Some(None),
        Some(n) => read_endpoint_header(n, errs),
    };
    let server_name = match o.opt("server_name") {
        None => Some(None),
        Some(n) => read_server_name(n, errs).map(Some),
    };
    let (address, socket_addr) = address?;
    Some(Endpoint {
        server_name: server_name?,
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

/// `IP:port` as is; `hostname:port` is checked for shape here and resolved
/// after the walk ([`super::checks`]): until then its IP is unspecified.
fn address(node: &Node<'_>, s: &str, errs: &mut Errors) -> Option<SocketAddr> {
    let addr = match s.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let parsed = s
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, _)| !host.is_empty() && !host.contains([':', '[', ']', '/', ' ']));
            let Some((_, port)) = parsed else {
                errs.at(
                    node,
                    format!(
                        "must be \"IP:port\" or \"hostname:port\" (IPv6 in brackets: \"[::1]:8080\"), got {}",
                        quote(s)
                    ),
                );
                return None;
            };
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port))
        }
    };
    if addr.port() == 0 {
        errs.at(node, format!("the port must not be 0, got {}", quote(s)));
        return None;
    }
    Some(addr)
}
