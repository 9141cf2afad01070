//! The `tether.load_balancers` section, and one load balancer validated
//! alone (for the admin API): [`load_balancer_from_value`] and its inverse
//! [`load_balancer_to_value`]; its `rules` (read by `rules.rs`) and their
//! `overrides`, checked against it and laid over it ([`apply_overrides`]).

use super::model::*;
use super::read::{all, join_key, quote, ConfigErrors, Errors, Node};
use super::rules::{read_rules, rules_to_value, OVERRIDE_KEYS, RULE_KEYS};
use super::spelling::Spelled;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Validates one load balancer's mapping alone, exactly as the file's
/// `tether.load_balancers.<name>` is (for the admin API's PATCH). `name` is
/// the host it serves (validated, then lower-cased); `pools` are the pools it
/// may name; `path` prefixes every error path (e.g.
/// `tether.load_balancers["www.example.com"]`, or `""` for bare keys).
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
        ("steering_policy", s(lb.steering_policy.name())),
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
        ("session_affinity", s(lb.session_affinity.name())),
        (
            "session_affinity_ttl",
            Value::from(lb.session_affinity_ttl.as_secs()),
        ),
        (
            "session_affinity_attributes",
            map(vec![
                ("samesite", s(a.samesite.name())),
                ("secure", s(a.secure.name())),
                ("drain_duration", Value::from(a.drain_duration.as_secs())),
                ("zero_downtime_failover", s(a.zero_downtime_failover.name())),
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
    if !lb.rules.is_empty() {
        entries.push(("rules", rules_to_value(&lb.rules)));
    }
    map(entries)
}

/// Whether the admin API may change a load balancer key at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settable {
    /// `PATCH /v1/load_balancers/{name}` may change it.
    RunTime,
    /// Only the configuration file changes it.
    FileOnly,
}

/// Every key of a load balancer, in the file's order: what the reader
/// accepts, what [`load_balancer_to_value`] writes, what the admin API shows
/// and may change. The one list of them.
pub const LOAD_BALANCER_KEYS: &[(&str, Settable)] = &[
    ("enabled", Settable::RunTime),
    ("default_pools", Settable::RunTime),
    ("fallback_pool", Settable::RunTime),
    ("steering_policy", Settable::RunTime),
    ("random_steering", Settable::FileOnly),
    ("session_affinity", Settable::RunTime),
    ("session_affinity_ttl", Settable::RunTime),
    ("session_affinity_attributes", Settable::RunTime),
    ("adaptive_routing", Settable::FileOnly),
    ("always_use_https", Settable::FileOnly),
    // File-only: a rule set is compiled with the state (docs/rules.md).
    ("rules", Settable::FileOnly),
];

/// The keys of `session_affinity_attributes`.
pub const ATTRIBUTE_KEYS: &[&str] = &[
    "samesite",
    "secure",
    "drain_duration",
    "zero_downtime_failover",
    "headers",
    "require_all_headers",
];

/// The mapping key that holds the attributes; a run-time change sets them
/// one by one (`session_affinity_attributes.drain_duration`).
pub const ATTRIBUTES: &str = "session_affinity_attributes";

/// The keys a run-time change may set, in [`LOAD_BALANCER_KEYS`]' order.
pub fn runtime_keys() -> impl Iterator<Item = &'static str> {
    LOAD_BALANCER_KEYS
        .iter()
        .filter(|(_, settable)| *settable == Settable::RunTime)
        .map(|(key, _)| *key)
}

/// The fields a run-time change sets, as dotted paths: every run-time key,
/// with the attributes one by one. The state file records changes per field.
pub fn runtime_fields() -> impl Iterator<Item = String> {
    runtime_keys().flat_map(|key| {
        if key == ATTRIBUTES {
            ATTRIBUTE_KEYS
                .iter()
                .map(|a| format!("{ATTRIBUTES}.{a}"))
                .collect()
        } else {
            vec![key.to_string()]
        }
    })
}

/// The longest `session_affinity_ttl` of `header` / `source_ip` affinity
/// (the session table's sessions): also the bound of a pin a cluster peer shares.
pub const TABLE_TTL_MAX_SECS: u64 = 3600;

/// The longest TTL any affinity type accepts (the cookie types'): also the
/// bound of a TTL given with `session_affinity: none`.
const MAX_TTL: i64 = 604_800;

/// Default TTL and accepted range per affinity type (SPEC 4.1).
fn ttl_rule(a: SessionAffinity) -> Option<(u64, i64, i64)> {
    match a {
        SessionAffinity::None => None,
        SessionAffinity::Cookie | SessionAffinity::IpCookie => Some((82_800, 1800, MAX_TTL)),
        SessionAffinity::Header | SessionAffinity::SourceIp => {
            Some((1800, 30, TABLE_TTL_MAX_SECS as i64))
        }
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

pub(super) fn read_load_balancers(
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

pub(super) fn read_load_balancer(
    node: &Node<'_>,
    name: Option<String>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) -> Option<LoadBalancer> {
    let keys: Vec<&str> = LOAD_BALANCER_KEYS.iter().map(|(k, _)| *k).collect();
    let o = node.object(errs, &keys)?;
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
    let steering_policy = o.choice_or(
        errs,
        "steering_policy",
        SteeringPolicy::SPELLINGS,
        SteeringPolicy::Off,
    );
    let random_steering = match o.opt("random_steering") {
        None => Some(RandomSteering::default()),
        Some(n) => read_random_steering(n, pools, errs),
    };
    let session_affinity = o.choice_or(
        errs,
        "session_affinity",
        SessionAffinity::SPELLINGS,
        SessionAffinity::None,
    );
    let session_affinity_ttl = match o.opt("session_affinity_ttl") {
        None => session_affinity.map(|a| ttl_rule(a).map_or(0, |(default, _, _)| default)),
        Some(n) => {
            // The type's range; without a type (none), at most what any allows.
            let (lo, hi, what) = match session_affinity.and_then(ttl_rule) {
                Some((_, lo, hi)) => (
                    lo,
                    hi,
                    format!(
                        " for session_affinity {}",
                        session_affinity.unwrap_or(SessionAffinity::None).name()
                    ),
                ),
                None => (0, MAX_TTL, String::new()),
            };
            n.int_within(errs, lo, hi, &what)
                .and_then(|ttl| u64::try_from(ttl).ok())
        }
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
    let rules = match o.opt("rules") {
        None => Some(Vec::new()),
        Some(n) => read_rules(n, errs),
    };

    let lb = LoadBalancer {
        name: name?,
        enabled: enabled?,
        default_pools: default_pools?,
        fallback_pool: fallback_pool?,
        steering_policy: steering_policy?,
        random_steering: random_steering?,
        session_affinity: session_affinity?,
        session_affinity_ttl: Duration::from_secs(session_affinity_ttl?),
        session_affinity_attributes: session_affinity_attributes?,
        adaptive_routing: adaptive_routing?,
        always_use_https: always_use_https?,
        rules: Vec::new(),
    };
    if let Some(n) = o.opt("rules") {
        check_overrides(&lb, n, pools, errs);
    }
    Some(LoadBalancer {
        rules: rules?,
        ..lb
    })
}

/// Checks every rule's `overrides` laid over `lb` (whatever else is wrong
/// with the rule), reporting under the rule's `overrides` path.
pub(super) fn check_overrides(
    lb: &LoadBalancer,
    rules_node: &Node<'_>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) {
    let Some(items) = rules_node.list(&mut Errors::new()) else {
        return;
    };
    for item in items {
        let Some(o) = item.object(&mut Errors::new(), RULE_KEYS) else {
            continue;
        };
        let Some(at) = o.opt("overrides") else {
            continue;
        };
        let Value::Mapping(overrides) = at.value else {
            continue;
        };
        // Unknown keys are the rule reader's to report.
        let known: Mapping = overrides
            .iter()
            .filter(|(k, _)| k.as_str().is_some_and(|k| OVERRIDE_KEYS.contains(&k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let merged = overlay(lb, &[&known]);
        let node = Node::new(&merged, at.path.clone(), at.order.clone());
        read_load_balancer(&node, Some(lb.name.clone()), pools, errs);
    }
}

/// `lb` with `overrides` laid over it in order (a later rule's key replaces
/// an earlier one's), without rules. Changing `session_affinity` without
/// `session_affinity_ttl` lets the TTL default for the new type.
fn overlay(lb: &LoadBalancer, overrides: &[&Mapping]) -> Value {
    let mut base = match load_balancer_to_value(lb) {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    };
    base.remove("rules");
    for o in overrides {
        if o.contains_key("session_affinity") && !o.contains_key("session_affinity_ttl") {
            base.remove("session_affinity_ttl");
        }
        for (k, v) in o.iter() {
            base.insert(k.clone(), v.clone());
        }
    }
    Value::Mapping(base)
}

/// The load balancer that routes a request matched by rules whose
/// `overrides` are `overrides` (in the order they ran): `lb`'s settings with
/// theirs laid over, and no rules of its own.
pub fn apply_overrides(
    lb: &LoadBalancer,
    overrides: &[&Mapping],
) -> Result<LoadBalancer, ConfigErrors> {
    let merged = overlay(lb, overrides);
    let mut errs = Errors::new();
    let node = Node::new(&merged, "", vec![]);
    let out = read_load_balancer(&node, Some(lb.name.clone()), None, &mut errs);
    errs.finish(out)
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
    let o = node.object(errs, ATTRIBUTE_KEYS)?;
    let samesite = o.choice_or(errs, "samesite", SameSite::SPELLINGS, SameSite::Auto);
    let mut secure = o.choice_or(errs, "secure", Secure::SPELLINGS, Secure::Auto);
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
        ZeroDowntimeFailover::SPELLINGS,
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
        drain_duration: Duration::from_secs(drain_duration? as u64),
        zero_downtime_failover: zero_downtime_failover?,
        headers: headers?,
        require_all_headers: require_all_headers?,
    })
}
