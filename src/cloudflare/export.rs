//! A configuration's objects as Cloudflare's: what the API's `GET`s answer
//! and `tether export --cloudflare` prints. Pure: the IDs come from `id_of`
//! (kind, name → 32 hex).

use serde_json::{Map, Value as Json};

use super::types;
use super::ObjectKind;
use crate::config::{self, Spelled};

/// Names an object's ID: (kind, name) → 32 hex.
pub type IdOf<'a> = &'a dyn Fn(ObjectKind, &str) -> String;

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}

fn secs_f(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// Tether's monitor `name` as Cloudflare's monitor (which has no name: its
/// `description` carries it).
pub fn monitor(m: &config::Monitor, id_of: IdOf<'_>) -> types::Monitor {
    let tcp = m.r#type == config::MonitorType::Tcp;
    types::Monitor {
        id: Some(id_of(ObjectKind::Monitor, &m.name)),
        r#type: Some(m.r#type.name().to_string()),
        description: Some(m.name.clone()),
        method: Some(if tcp {
            "connection_established".to_string()
        } else {
            m.method.clone()
        }),
        path: (!tcp).then(|| m.path.clone()),
        port: Some(m.port),
        expected_codes: (!tcp).then(|| expected_codes(&m.expected_codes)),
        expected_body: (!tcp).then(|| m.expected_body.clone()),
        header: (!tcp && !m.header.is_empty()).then(|| m.header.clone()),
        interval: Some(secs(m.interval)),
        timeout: Some(secs(m.timeout)),
        retries: Some(m.retries),
        consecutive_up: Some(m.consecutive_up),
        consecutive_down: Some(m.consecutive_down),
        allow_insecure: Some(m.allow_insecure),
        // Tether's probes never follow a redirect.
        follow_redirects: (!tcp).then_some(false),
        ..Default::default()
    }
}

fn expected_codes(codes: &config::ExpectedCodes) -> String {
    match serde_json::to_value(codes) {
        Ok(Json::String(s)) => s,
        _ => String::new(),
    }
}

/// `host:port` → (`host`, port); `[v6]:port` → (`v6`, port); no port → 0.
pub fn split_address(address: &str) -> (String, u16) {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_string(), port.unwrap_or(0));
        }
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_string(), port),
            Err(_) => (address.to_string(), 0),
        },
        _ => (address.to_string(), 0),
    }
}

pub fn pool(p: &config::Pool, id_of: IdOf<'_>) -> types::Pool {
    let origins = p
        .endpoints
        .iter()
        .map(|e| {
            let (address, port) = split_address(&e.address);
            types::Origin {
                name: Some(e.name.clone()),
                address: Some(address),
                port: Some(port),
                enabled: Some(e.enabled),
                weight: Some(e.weight),
                header: Some(types::OriginHeader {
                    host: e.host.as_ref().map(|h| vec![h.clone()]),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let s = &p.load_shedding;
    types::Pool {
        id: Some(id_of(ObjectKind::Pool, &p.name)),
        name: Some(p.name.clone()),
        enabled: Some(p.enabled),
        minimum_origins: Some(p.minimum_origins as u64),
        monitor: p.monitor.as_ref().map(|m| id_of(ObjectKind::Monitor, m)),
        origin_steering: Some(types::OriginSteering {
            policy: Some(p.origin_steering.name().to_string()),
            ..Default::default()
        }),
        origins: Some(origins),
        load_shedding: Some(types::LoadShedding {
            default_percent: Some(s.default_percent),
            default_policy: Some(s.default_policy.name().to_string()),
            session_percent: Some(s.session_percent),
            session_policy: Some(s.session_policy.name().to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn load_balancer(lb: &config::LoadBalancer, id_of: IdOf<'_>) -> types::LoadBalancer {
    let pool_id = |name: &String| id_of(ObjectKind::Pool, name);
    let a = &lb.session_affinity_attributes;
    let affinity_on = lb.session_affinity != config::SessionAffinity::None;
    types::LoadBalancer {
        id: Some(id_of(ObjectKind::LoadBalancer, &lb.name)),
        name: Some(lb.name.clone()),
        enabled: Some(lb.enabled),
        default_pools: Some(lb.default_pools.iter().map(pool_id).collect()),
        fallback_pool: lb.fallback_pool.as_ref().map(pool_id),
        steering_policy: Some(lb.steering_policy.name().to_string()),
        random_steering: Some(types::RandomSteering {
            default_weight: Some(lb.random_steering.default_weight),
            pool_weights: Some(
                lb.random_steering
                    .pool_weights
                    .iter()
                    .map(|(p, w)| (pool_id(p), *w))
                    .collect(),
            ),
            ..Default::default()
        }),
        session_affinity: Some(lb.session_affinity.name().to_string()),
        session_affinity_ttl: affinity_on.then(|| secs_f(lb.session_affinity_ttl)),
        session_affinity_attributes: Some(types::SessionAffinityAttributes {
            samesite: Some(a.samesite.name().to_string()),
            secure: Some(a.secure.name().to_string()),
            drain_duration: Some(secs_f(a.drain_duration)),
            zero_downtime_failover: Some(a.zero_downtime_failover.name().to_string()),
            headers: Some(a.headers.clone()),
            require_all_headers: Some(a.require_all_headers),
            ..Default::default()
        }),
        adaptive_routing: Some(types::AdaptiveRouting {
            failover_across_pools: Some(lb.adaptive_routing.failover_across_pools),
            ..Default::default()
        }),
        rules: Some(lb.rules.iter().map(|r| rule(r, id_of)).collect()),
        // Tether is the proxy: every load balancer is proxied.
        proxied: Some(true),
        ..Default::default()
    }
}

fn rule(r: &config::Rule, id_of: IdOf<'_>) -> types::Rule {
    let overrides = match serde_json::to_value(&r.overrides) {
        Ok(Json::Object(map)) => pools_by(map, &|name| id_of(ObjectKind::Pool, name)),
        _ => Map::new(),
    };
    types::Rule {
        name: Some(r.name.clone()),
        condition: Some(r.condition.clone()),
        priority: Some(r.priority),
        disabled: Some(r.disabled),
        terminates: Some(r.terminates || r.fixed_response.is_some()),
        overrides: Some(overrides),
        fixed_response: r.fixed_response.as_ref().map(|f| types::FixedResponse {
            status_code: Some(f.status_code),
            location: f.location.clone(),
            content_type: Some(f.content_type.clone()),
            message_body: Some(f.message_body.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A rule's overrides with every pool reference (`default_pools`,
/// `fallback_pool`, `random_steering.pool_weights`' keys) mapped by `map`:
/// names → IDs on export, IDs → names on import.
pub fn pools_by(
    mut overrides: Map<String, Json>,
    map: &dyn Fn(&str) -> String,
) -> Map<String, Json> {
    if let Some(Json::Array(pools)) = overrides.get_mut("default_pools") {
        for p in pools.iter_mut() {
            if let Json::String(s) = p {
                *s = map(s);
            }
        }
    }
    if let Some(Json::String(s)) = overrides.get_mut("fallback_pool") {
        *s = map(s);
    }
    if let Some(Json::Object(rs)) = overrides.get_mut("random_steering") {
        if let Some(Json::Object(weights)) = rs.get_mut("pool_weights") {
            *weights = std::mem::take(weights)
                .into_iter()
                .map(|(k, v)| (map(&k), v))
                .collect();
        }
    }
    overrides
}

/// A whole configuration's objects, sorted by name.
pub fn all(config: &config::Config, id_of: IdOf<'_>) -> types::Export {
    types::Export {
        monitors: config
            .monitors
            .values()
            .map(|m| monitor(m, id_of))
            .collect(),
        pools: config.pools.values().map(|p| pool(p, id_of)).collect(),
        load_balancers: config
            .load_balancers
            .values()
            .map(|lb| load_balancer(lb, id_of))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_address("10.0.0.1:8080"), ("10.0.0.1".into(), 8080));
        assert_eq!(
            split_address("app.internal:80"),
            ("app.internal".into(), 80)
        );
        assert_eq!(split_address("[::1]:9000"), ("::1".into(), 9000));
        assert_eq!(split_address("::1"), ("::1".into(), 0));
        assert_eq!(split_address("host"), ("host".into(), 0));
    }

    #[test]
    fn a_monitor_names_itself_in_its_description() {
        let m = config::Monitor {
            name: "api".into(),
            ..Default::default()
        };
        let out = monitor(&m, &|k, n| super::super::object_id(k, n));
        assert_eq!(out.description.as_deref(), Some("api"));
        assert_eq!(out.expected_codes.as_deref(), Some("200"));
        assert_eq!(out.interval, Some(60));
        assert_eq!(
            out.id,
            Some(super::super::object_id(ObjectKind::Monitor, "api"))
        );
    }
}
