//! Cloudflare's objects as a configuration's: what the API's `POST`/`PUT`
//! bodies and `tether import --cloudflare` become. Pure. Every field
//! Cloudflare has is either carried over, or named in [`Notes`]: dropped
//! (accepted, not honoured, routing unchanged) or refused (Tether cannot
//! honour it; the API answers `400`). Absent fields take the reader's
//! defaults (the same as Cloudflare's).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::types;
use super::{Notes, ObjectKind};
use crate::config::read::name_ok;
use crate::config::{self, Spelled};

/// Resolves a reference: (kind, ID) → the object's name.
pub type NameOf<'a> = &'a dyn Fn(ObjectKind, &str) -> Option<String>;

fn spelled<T: Spelled>(s: &str) -> Option<T> {
    T::SPELLINGS.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
}

fn spellings<T: Spelled>() -> String {
    T::SPELLINGS
        .iter()
        .filter(|(n, _)| !n.is_empty())
        .map(|(n, _)| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads an enumerated field: `None` absent; an unknown spelling refused.
fn read_spelled<T: Spelled>(value: &Option<String>, path: &str, notes: &mut Notes) -> Option<T> {
    let s = value.as_deref()?;
    let v = spelled::<T>(s);
    if v.is_none() {
        notes.refuse(
            path,
            format!(
                "{s:?} is not supported by Tether (it supports {})",
                spellings::<T>()
            ),
        );
    }
    v
}

fn others(other: &BTreeMap<String, Json>, path: &str, notes: &mut Notes) {
    for key in other.keys() {
        notes.drop(
            &format!("{path}.{key}"),
            "not a field of Cloudflare's object; ignored",
        );
    }
}

/// Notes `value` as accepted but not honoured, when set (null or an empty
/// string, list or map count as unset).
fn not_honoured(value: &Option<Json>, path: &str, why: &str, notes: &mut Notes) {
    let set = match value {
        None | Some(Json::Null) => false,
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
        Some(_) => true,
    };
    if set {
        notes.drop(path, why);
    }
}

/// `name` with every character a Tether name cannot hold replaced by `-`.
pub fn sanitized(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

/// The Tether name of a Cloudflare monitor (which has none): its
/// `description` when that is a valid name, else `monitor-` and its ID.
pub fn monitor_name(m: &types::Monitor) -> String {
    match m.description.as_deref() {
        Some(d) if name_ok(d) => d.to_string(),
        _ => format!("monitor-{}", m.id.as_deref().unwrap_or("new")),
    }
}

fn duration_secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn duration_f(v: f64, path: &str, notes: &mut Notes) -> Option<Duration> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
        Some(Duration::from_secs(v as u64))
    } else {
        notes.refuse(path, format!("must be a whole number of seconds, got {v}"));
        None
    }
}

/// A monitor named `name`.
pub fn monitor(m: &types::Monitor, name: &str, path: &str, notes: &mut Notes) -> config::Monitor {
    let mut out = config::Monitor {
        name: name.to_string(),
        ..Default::default()
    };
    if let Some(t) = read_spelled::<config::MonitorType>(&m.r#type, &format!("{path}.type"), notes)
    {
        out.r#type = t;
    }
    let tcp = out.r#type == config::MonitorType::Tcp;
    if let Some(method) = &m.method {
        if tcp {
            if method != "connection_established" {
                notes.refuse(
                    &format!("{path}.method"),
                    format!("a tcp monitor's method is \"connection_established\", got {method:?}"),
                );
            }
        } else {
            out.method = method.clone();
        }
    }
    if let Some(p) = &m.path {
        out.path = p.clone();
    }
    if let Some(port) = m.port {
        out.port = port;
    }
    if let Some(codes) = &m.expected_codes {
        match config::ExpectedCodes::parse(codes) {
            Some(c) => out.expected_codes = c,
            None => notes.refuse(
                &format!("{path}.expected_codes"),
                format!("expected codes like \"200\", \"2xx\" or \"200,302\", got {codes:?}"),
            ),
        }
    }
    if let Some(body) = &m.expected_body {
        out.expected_body = body.to_lowercase();
    }
    if let Some(h) = &m.header {
        out.header = h.clone();
    }
    if let Some(v) = m.interval {
        out.interval = duration_secs(v);
    }
    if let Some(v) = m.timeout {
        out.timeout = duration_secs(v);
    }
    if let Some(v) = m.retries {
        out.retries = v;
    }
    if let Some(v) = m.consecutive_up {
        out.consecutive_up = v;
    }
    if let Some(v) = m.consecutive_down {
        out.consecutive_down = v;
    }
    if let Some(v) = m.allow_insecure {
        out.allow_insecure = v;
    }
    if m.follow_redirects == Some(true) {
        notes.refuse(
            &format!("{path}.follow_redirects"),
            "Tether's probes never follow redirects (a 3xx is judged by expected_codes)",
        );
    }
    if m.probe_zone.as_deref().is_some_and(|z| !z.is_empty()) {
        notes.drop(
            &format!("{path}.probe_zone"),
            "Cloudflare's zones; not honoured",
        );
    }
    others(&m.other, path, notes);
    out
}

/// A pool; `None` when it has no `name` (refused).
pub fn pool(
    p: &types::Pool,
    path: &str,
    name_of: NameOf<'_>,
    notes: &mut Notes,
) -> Option<config::Pool> {
    let Some(name) = p.name.clone() else {
        notes.refuse(&format!("{path}.name"), "a pool needs a name");
        return None;
    };
    if !name_ok(&name) {
        notes.refuse(
            &format!("{path}.name"),
            format!("use only letters, digits, \"_\", \".\" and \"-\", got {name:?}"),
        );
    }
    let mut out = config::Pool {
        name,
        ..Default::default()
    };
    if let Some(v) = p.enabled {
        out.enabled = v;
    }
    if let Some(v) = p.minimum_origins {
        out.minimum_origins = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(id) = p.monitor.as_deref().filter(|id| !id.is_empty()) {
        match name_of(ObjectKind::Monitor, id) {
            Some(m) => out.monitor = Some(m),
            None => notes.refuse(
                &format!("{path}.monitor"),
                format!("no monitor has ID {id:?}"),
            ),
        }
    }
    if let Some(s) = &p.origin_steering {
        if let Some(v) = read_spelled(&s.policy, &format!("{path}.origin_steering.policy"), notes) {
            out.origin_steering = v;
        }
        others(&s.other, &format!("{path}.origin_steering"), notes);
    }
    for (i, o) in p.origins.iter().flatten().enumerate() {
        if let Some(e) = origin(o, &format!("{path}.origins[{i}]"), notes) {
            out.endpoints.push(e);
        }
    }
    if let Some(s) = &p.load_shedding {
        let at = format!("{path}.load_shedding");
        let ls = &mut out.load_shedding;
        if let Some(v) = s.default_percent {
            ls.default_percent = v;
        }
        if let Some(v) = read_spelled(&s.default_policy, &format!("{at}.default_policy"), notes) {
            ls.default_policy = v;
        }
        if let Some(v) = s.session_percent {
            ls.session_percent = v;
        }
        if let Some(v) = read_spelled(&s.session_policy, &format!("{at}.session_policy"), notes) {
            ls.session_policy = v;
        }
        others(&s.other, &at, notes);
    }
    let region = "Cloudflare's regions and network; Tether checks from where it runs";
    not_honoured(
        &p.check_regions,
        &format!("{path}.check_regions"),
        region,
        notes,
    );
    not_honoured(
        &p.latitude,
        &format!("{path}.latitude"),
        "proximity steering is not implemented",
        notes,
    );
    not_honoured(
        &p.longitude,
        &format!("{path}.longitude"),
        "proximity steering is not implemented",
        notes,
    );
    let notify = "notifications are not sent (see the metrics and the admin API)";
    not_honoured(
        &p.notification_email,
        &format!("{path}.notification_email"),
        notify,
        notes,
    );
    not_honoured(
        &p.notification_filter,
        &format!("{path}.notification_filter"),
        notify,
        notes,
    );
    not_honoured(&p.networks, &format!("{path}.networks"), region, notes);
    not_honoured(
        &p.health_sources,
        &format!("{path}.health_sources"),
        region,
        notes,
    );
    if p.description.as_deref().is_some_and(|d| !d.is_empty()) {
        notes.drop(&format!("{path}.description"), "not kept");
    }
    if p.monitor_group
        .as_ref()
        .is_some_and(|g| !g.is_null() && g != "")
    {
        notes.refuse(
            &format!("{path}.monitor_group"),
            "monitor groups are not implemented; use monitor",
        );
    }
    others(&p.other, path, notes);
    Some(out)
}

fn origin(o: &types::Origin, path: &str, notes: &mut Notes) -> Option<config::Endpoint> {
    let (Some(name), Some(address)) = (&o.name, &o.address) else {
        notes.refuse(path, "an origin needs a name and an address");
        return None;
    };
    let port = match o.port {
        Some(p) if p != 0 => p,
        _ => {
            notes.drop(
                &format!("{path}.port"),
                "absent or 0: the protocol's default port, 80 (plain HTTP, as Tether speaks to a pool without tls)",
            );
            80
        }
    };
    let address = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let mut e = config::Endpoint::at(name, &address);
    if let Some(v) = o.enabled {
        e.enabled = v;
    }
    if let Some(v) = o.weight {
        e.weight = v;
    }
    if let Some(h) = &o.header {
        match h.host.as_deref() {
            None | Some([]) => {}
            Some([one]) => e.host = Some(one.clone()),
            Some(_) => notes.refuse(&format!("{path}.header.Host"), "at most one Host"),
        }
        for key in h.other.keys() {
            notes.refuse(&format!("{path}.header.{key}"), "only Host is supported");
        }
    }
    not_honoured(
        &o.virtual_network_id,
        &format!("{path}.virtual_network_id"),
        "Cloudflare Tunnel's networks",
        notes,
    );
    others(&o.other, path, notes);
    Some(e)
}

/// A load balancer; `None` when it has no `name` (refused).
pub fn load_balancer(
    lb: &types::LoadBalancer,
    path: &str,
    name_of: NameOf<'_>,
    notes: &mut Notes,
) -> Option<config::LoadBalancer> {
    let Some(name) = lb.name.as_deref().map(str::to_ascii_lowercase) else {
        notes.refuse(
            &format!("{path}.name"),
            "a load balancer needs a name (its host)",
        );
        return None;
    };
    let mut out = config::LoadBalancer {
        name,
        ..Default::default()
    };
    let pool = |id: &str, at: &str, notes: &mut Notes| -> Option<String> {
        let found = name_of(ObjectKind::Pool, id);
        if found.is_none() {
            notes.refuse(at, format!("no pool has ID {id:?}"));
        }
        found
    };
    if let Some(v) = lb.enabled {
        out.enabled = v;
    }
    for (i, id) in lb.default_pools.iter().flatten().enumerate() {
        if let Some(p) = pool(id, &format!("{path}.default_pools[{i}]"), notes) {
            out.default_pools.push(p);
        }
    }
    if let Some(id) = lb.fallback_pool.as_deref().filter(|id| !id.is_empty()) {
        out.fallback_pool = pool(id, &format!("{path}.fallback_pool"), notes);
    }
    let geo = [&lb.region_pools, &lb.country_pools, &lb.pop_pools]
        .iter()
        .any(|m| m.as_ref().is_some_and(|m| !m.is_empty()));
    match lb.steering_policy.as_deref() {
        // Absent is "" too: with region/country/PoP pools Cloudflare steers by geo.
        None | Some("") if geo => notes.refuse(
            &format!("{path}.steering_policy"),
            "\"\" with region/country/pop pools means \"geo\", which Tether does not implement",
        ),
        _ => {
            if let Some(v) = read_spelled(
                &lb.steering_policy,
                &format!("{path}.steering_policy"),
                notes,
            ) {
                out.steering_policy = v;
            }
        }
    }
    if geo {
        notes.drop(
            &format!("{path}.region_pools/country_pools/pop_pools"),
            "geo steering is not implemented; kept out (steering is not geo)",
        );
    }
    if let Some(rs) = &lb.random_steering {
        if let Some(v) = rs.default_weight {
            out.random_steering.default_weight = v;
        }
        for (id, w) in rs.pool_weights.iter().flatten() {
            if let Some(p) = pool(
                id,
                &format!("{path}.random_steering.pool_weights.{id}"),
                notes,
            ) {
                out.random_steering.pool_weights.insert(p, *w);
            }
        }
        others(&rs.other, &format!("{path}.random_steering"), notes);
    }
    if let Some(v) = read_spelled(
        &lb.session_affinity,
        &format!("{path}.session_affinity"),
        notes,
    ) {
        out.session_affinity = v;
    }
    let affinity_on = out.session_affinity != config::SessionAffinity::None;
    if let Some(ttl) = lb.session_affinity_ttl {
        if affinity_on {
            if let Some(d) = duration_f(ttl, &format!("{path}.session_affinity_ttl"), notes) {
                out.session_affinity_ttl = d;
            }
        }
    }
    if let Some(a) = &lb.session_affinity_attributes {
        let at = format!("{path}.session_affinity_attributes");
        let o = &mut out.session_affinity_attributes;
        if let Some(v) = read_spelled(&a.samesite, &format!("{at}.samesite"), notes) {
            o.samesite = v;
        }
        if let Some(v) = read_spelled(&a.secure, &format!("{at}.secure"), notes) {
            o.secure = v;
        }
        if let Some(v) = a.drain_duration {
            if let Some(d) = duration_f(v, &format!("{at}.drain_duration"), notes) {
                o.drain_duration = d;
            }
        }
        if let Some(v) = read_spelled(
            &a.zero_downtime_failover,
            &format!("{at}.zero_downtime_failover"),
            notes,
        ) {
            o.zero_downtime_failover = v;
        }
        if let Some(v) = &a.headers {
            o.headers = v.clone();
        }
        if let Some(v) = a.require_all_headers {
            o.require_all_headers = v;
        }
        others(&a.other, &at, notes);
    }
    if let Some(ar) = &lb.adaptive_routing {
        if let Some(v) = ar.failover_across_pools {
            out.adaptive_routing.failover_across_pools = v;
        }
        others(&ar.other, &format!("{path}.adaptive_routing"), notes);
    }
    for (i, r) in lb.rules.iter().flatten().enumerate() {
        if let Some(r) = rule(r, &format!("{path}.rules[{i}]"), name_of, notes) {
            out.rules.push(r);
        }
    }
    if lb.proxied == Some(false) {
        notes.drop(
            &format!("{path}.proxied"),
            "Tether always proxies (DNS-only load balancing is not implemented)",
        );
    }
    not_honoured(
        &lb.ttl,
        &format!("{path}.ttl"),
        "a DNS TTL; Tether always proxies",
        notes,
    );
    not_honoured(
        &lb.location_strategy,
        &format!("{path}.location_strategy"),
        "geo steering is not implemented",
        notes,
    );
    not_honoured(
        &lb.networks,
        &format!("{path}.networks"),
        "Cloudflare's networks",
        notes,
    );
    if lb.description.as_deref().is_some_and(|d| !d.is_empty()) {
        notes.drop(&format!("{path}.description"), "not kept");
    }
    if lb.pool_sets.as_ref().is_some_and(|s| !s.is_empty()) {
        notes.refuse(
            &format!("{path}.pool_sets"),
            "pool sets are not implemented",
        );
    }
    others(&lb.other, path, notes);
    Some(out)
}

fn rule(
    r: &types::Rule,
    path: &str,
    name_of: NameOf<'_>,
    notes: &mut Notes,
) -> Option<config::Rule> {
    let Some(name) = r.name.clone() else {
        notes.refuse(&format!("{path}.name"), "a rule needs a name");
        return None;
    };
    let name = if name_ok(&name) {
        name
    } else {
        let renamed = sanitized(&name);
        notes.drop(
            &format!("{path}.name"),
            format!("{name:?} is not a Tether rule name ([A-Za-z0-9_.-]); renamed {renamed:?}"),
        );
        renamed
    };
    let overrides = r.overrides.clone().unwrap_or_default();
    for key in overrides.keys() {
        if !config::OVERRIDE_KEYS.contains(&key.as_str()) {
            notes.refuse(
                &format!("{path}.overrides.{key}"),
                format!(
                    "Tether's overrides are {}",
                    config::OVERRIDE_KEYS.join(", ")
                ),
            );
        }
    }
    let unknown = std::cell::RefCell::new(Vec::new());
    let overrides: Map<String, Json> = super::export::pools_by(
        overrides
            .into_iter()
            .filter(|(k, _)| config::OVERRIDE_KEYS.contains(&k.as_str()))
            .collect(),
        &|id| {
            name_of(ObjectKind::Pool, id).unwrap_or_else(|| {
                unknown.borrow_mut().push(id.to_string());
                id.to_string()
            })
        },
    );
    for id in unknown.into_inner() {
        notes.refuse(
            &format!("{path}.overrides"),
            format!("no pool has ID {id:?}"),
        );
    }
    let overrides = match serde_yaml::to_value(&overrides) {
        Ok(serde_yaml::Value::Mapping(m)) => m,
        _ => serde_yaml::Mapping::new(),
    };
    let fixed_response = r.fixed_response.as_ref().map(|f| {
        others(&f.other, &format!("{path}.fixed_response"), notes);
        let d = config::FixedResponse::default();
        config::FixedResponse {
            status_code: f.status_code.unwrap_or(d.status_code),
            location: f.location.clone(),
            content_type: f.content_type.clone().unwrap_or(d.content_type),
            message_body: f.message_body.clone().unwrap_or_default(),
        }
    });
    others(&r.other, path, notes);
    Some(config::Rule {
        name,
        condition: r.condition.clone().unwrap_or_default(),
        priority: r.priority.unwrap_or(0),
        disabled: r.disabled.unwrap_or(false),
        terminates: r.terminates.unwrap_or(false) && fixed_response.is_none(),
        overrides,
        fixed_response,
    })
}

/// The objects of a Cloudflare export as the `tether:` keys `monitors`,
/// `pools` and `load_balancers`, references resolved through the export's
/// own IDs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    pub monitors: BTreeMap<String, config::Monitor>,
    pub pools: BTreeMap<String, config::Pool>,
    pub load_balancers: BTreeMap<String, config::LoadBalancer>,
}

pub fn all(export: &types::Export) -> (Imported, Notes) {
    let mut notes = Notes::default();
    let mut out = Imported::default();
    let mut names: BTreeMap<(ObjectKind, String), String> = BTreeMap::new();
    for (i, m) in export.monitors.iter().enumerate() {
        let name = monitor_name(m);
        let monitor = monitor(m, &name, &format!("monitors[{i}]"), &mut notes);
        if let Some(id) = &m.id {
            names.insert((ObjectKind::Monitor, id.clone()), name.clone());
        }
        out.monitors.insert(name, monitor);
    }
    for p in &export.pools {
        if let (Some(id), Some(name)) = (&p.id, &p.name) {
            names.insert((ObjectKind::Pool, id.clone()), name.clone());
        }
    }
    let name_of = |kind: ObjectKind, id: &str| names.get(&(kind, id.to_string())).cloned();
    for (i, p) in export.pools.iter().enumerate() {
        if let Some(pool) = pool(p, &format!("pools[{i}]"), &name_of, &mut notes) {
            out.pools.insert(pool.name.clone(), pool);
        }
    }
    for (i, lb) in export.load_balancers.iter().enumerate() {
        if let Some(lb) = load_balancer(lb, &format!("load_balancers[{i}]"), &name_of, &mut notes) {
            out.load_balancers.insert(lb.name.clone(), lb);
        }
    }
    (out, notes)
}

/// The `tether:` section's `monitors`, `pools` and `load_balancers` as YAML,
/// in the reader's form.
pub fn to_yaml(imported: &Imported) -> Result<String, serde_yaml::Error> {
    #[derive(serde::Serialize)]
    struct Section<'a> {
        load_balancers: &'a BTreeMap<String, config::LoadBalancer>,
        pools: &'a BTreeMap<String, config::Pool>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        monitors: &'a BTreeMap<String, config::Monitor>,
    }
    #[derive(serde::Serialize)]
    struct Top<'a> {
        tether: Section<'a>,
    }
    serde_yaml::to_string(&Top {
        tether: Section {
            load_balancers: &imported.load_balancers,
            pools: &imported.pools,
            monitors: &imported.monitors,
        },
    })
}

#[cfg(test)]
mod tests;
