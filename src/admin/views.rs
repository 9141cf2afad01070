//! The JSON shapes of the admin API: Cloudflare's envelope and field names
//! for load balancers, pools and endpoints, and Rackspace's shape for
//! `session_persistence`. Built from the live [`State`]; time is passed in.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::affinity::drain::{drain_state, DrainState};
use crate::clock::Now;
use crate::config::{
    self, OriginSteering, SameSite, Secure, SessionAffinity, SteeringPolicy, ZeroDowntimeFailover,
};
use crate::state::{LastCheck, State};

/// Cloudflare's response envelope.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub result: Option<T>,
}

#[derive(Debug, Serialize)]
pub struct ErrorItem {
    pub message: String,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(result: T) -> Self {
        Envelope {
            success: true,
            errors: Vec::new(),
            result: Some(result),
        }
    }
}

impl Envelope<()> {
    pub fn errors(messages: &[String]) -> Self {
        Envelope {
            success: false,
            errors: messages
                .iter()
                .map(|m| ErrorItem { message: m.clone() })
                .collect(),
            result: None,
        }
    }
}

/// A load balancer's effective settings, Cloudflare's field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadBalancerView {
    pub name: String,
    pub enabled: bool,
    pub default_pools: Vec<String>,
    /// `null` when none.
    pub fallback_pool: Option<String>,
    pub steering_policy: &'static str,
    pub random_steering: RandomSteeringView,
    pub session_affinity: &'static str,
    pub session_affinity_ttl: u64,
    pub session_affinity_attributes: AttributesView,
    pub adaptive_routing: AdaptiveRoutingView,
    pub always_use_https: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomSteeringView {
    pub default_weight: f64,
    pub pool_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributesView {
    pub samesite: &'static str,
    pub secure: &'static str,
    pub drain_duration: u64,
    pub zero_downtime_failover: &'static str,
    pub headers: Vec<String>,
    pub require_all_headers: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptiveRoutingView {
    pub failover_across_pools: bool,
}

pub fn load_balancer(lb: &config::LoadBalancer) -> LoadBalancerView {
    let a = &lb.session_affinity_attributes;
    LoadBalancerView {
        name: lb.name.clone(),
        enabled: lb.enabled,
        default_pools: lb.default_pools.clone(),
        fallback_pool: lb.fallback_pool.clone(),
        steering_policy: steering_name(lb.steering_policy),
        random_steering: RandomSteeringView {
            default_weight: lb.random_steering.default_weight,
            pool_weights: lb.random_steering.pool_weights.clone(),
        },
        session_affinity: affinity_name(lb.session_affinity),
        session_affinity_ttl: lb.session_affinity_ttl,
        session_affinity_attributes: AttributesView {
            samesite: samesite_name(a.samesite),
            secure: secure_name(a.secure),
            drain_duration: a.drain_duration,
            zero_downtime_failover: zdf_name(a.zero_downtime_failover),
            headers: a.headers.clone(),
            require_all_headers: a.require_all_headers,
        },
        adaptive_routing: AdaptiveRoutingView {
            failover_across_pools: lb.adaptive_routing.failover_across_pools,
        },
        always_use_https: lb.always_use_https,
    }
}

// The canonical spellings, as `config::load_balancer_to_value` writes them
// (a unit test keeps the two in step).
pub fn steering_name(v: SteeringPolicy) -> &'static str {
    match v {
        SteeringPolicy::Off => "off",
        SteeringPolicy::Random => "random",
        SteeringPolicy::LeastOutstandingRequests => "least_outstanding_requests",
        SteeringPolicy::DynamicLatency => "dynamic_latency",
    }
}
pub fn affinity_name(v: SessionAffinity) -> &'static str {
    match v {
        SessionAffinity::None => "none",
        SessionAffinity::Cookie => "cookie",
        SessionAffinity::IpCookie => "ip_cookie",
        SessionAffinity::Header => "header",
        SessionAffinity::SourceIp => "source_ip",
    }
}
fn samesite_name(v: SameSite) -> &'static str {
    match v {
        SameSite::Auto => "Auto",
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
        SameSite::None => "None",
    }
}
fn secure_name(v: Secure) -> &'static str {
    match v {
        Secure::Auto => "Auto",
        Secure::Always => "Always",
        Secure::Never => "Never",
    }
}
fn zdf_name(v: ZeroDowntimeFailover) -> &'static str {
    match v {
        ZeroDowntimeFailover::None => "none",
        ZeroDowntimeFailover::Temporary => "temporary",
        ZeroDowntimeFailover::Sticky => "sticky",
    }
}
fn origin_steering_name(v: OriginSteering) -> &'static str {
    match v {
        OriginSteering::Random => "random",
        OriginSteering::Hash => "hash",
        OriginSteering::LeastOutstandingRequests => "least_outstanding_requests",
        OriginSteering::LeastConnections => "least_connections",
    }
}

/// A pool with its live health and endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolView {
    pub name: String,
    pub enabled: bool,
    pub minimum_origins: usize,
    pub monitor: Option<String>,
    pub origin_steering: OriginSteeringView,
    /// Enabled, with at least `minimum_origins` endpoints enabled and healthy.
    pub healthy: bool,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginSteeringView {
    pub policy: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub name: String,
    pub address: String,
    pub enabled: bool,
    pub weight: f64,
    pub healthy: bool,
    pub in_flight: u64,
    /// One entry per load balancer for which the endpoint is inside its drain.
    pub draining: Vec<DrainView>,
    pub last_check: Option<LastCheckView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainView {
    pub load_balancer: String,
    /// Whole seconds, rounded up (at least 1 while draining).
    pub seconds_left: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastCheckView {
    /// RFC 3339, UTC, milliseconds: `2024-05-01T12:00:00.123Z`.
    pub time: String,
    pub ok: bool,
    /// Why the probe failed; `null` when it passed.
    pub failure: Option<String>,
}

pub fn pool(state: &State, index: usize, now: Now) -> PoolView {
    let p = &state.pools[index];
    PoolView {
        name: p.name().to_string(),
        enabled: p.enabled(),
        minimum_origins: p.conf.minimum_origins,
        monitor: p.conf.monitor.clone(),
        origin_steering: OriginSteeringView {
            policy: origin_steering_name(p.conf.origin_steering),
        },
        healthy: state.pool_is_healthy(index),
        endpoints: (0..p.endpoints.len())
            .map(|e| endpoint(state, index, e, now))
            .collect(),
    }
}

pub fn endpoint(state: &State, pool: usize, index: usize, now: Now) -> EndpointView {
    let e = &state.pools[pool].endpoints[index];
    let lbs = state.load_balancers();
    let mut users: Vec<_> = lbs
        .all()
        .filter(|lb| {
            lb.conf.session_affinity != SessionAffinity::None
                && lb.drain_ms > 0
                && (lb.is_default_pool(pool) || lb.fallback_pool == Some(pool))
        })
        .collect();
    users.sort_by(|a, b| a.conf.name.cmp(&b.conf.name));
    let draining = users
        .into_iter()
        .filter_map(
            |lb| match drain_state(e.disabled_since(), lb.drain_ms, now.ms) {
                DrainState::Draining { left_ms } => Some(DrainView {
                    load_balancer: lb.conf.name.clone(),
                    seconds_left: left_ms.div_ceil(1000),
                }),
                _ => None,
            },
        )
        .collect();
    EndpointView {
        name: e.name().to_string(),
        address: e.conf.address.clone(),
        enabled: e.enabled(),
        weight: e.weight(),
        healthy: e.healthy(),
        in_flight: e.in_flight(),
        draining,
        last_check: e.last_check().map(|c| last_check(&c)),
    }
}

fn last_check(c: &LastCheck) -> LastCheckView {
    LastCheckView {
        time: rfc3339_ms(c.unix_ms),
        ok: c.failure.is_none(),
        failure: c.failure.clone(),
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Rackspace's `session_persistence` resource for a load balancer's affinity:
/// `HTTP_COOKIE` is `cookie`, `SOURCE_IP` is `source_ip`; the types without a
/// Rackspace equivalent answer an empty `sessionPersistence` and name
/// themselves in `session_affinity`.
pub fn session_persistence(affinity: SessionAffinity) -> serde_json::Value {
    use serde_json::json;
    match affinity {
        SessionAffinity::Cookie => {
            json!({"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}})
        }
        SessionAffinity::SourceIp => {
            json!({"sessionPersistence": {"persistenceType": "SOURCE_IP"}})
        }
        SessionAffinity::None => json!({"sessionPersistence": {}}),
        other @ (SessionAffinity::IpCookie | SessionAffinity::Header) => {
            json!({"sessionPersistence": {}, "session_affinity": affinity_name(other)})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_balancer_to_value;
    use crate::fixtures::config;

    #[test]
    fn spellings_match_the_configuration_file() {
        let base = config(vec![], &[], None).load_balancers["*"].clone();
        let steering = [
            SteeringPolicy::Off,
            SteeringPolicy::Random,
            SteeringPolicy::LeastOutstandingRequests,
            SteeringPolicy::DynamicLatency,
        ];
        let affinity = [
            SessionAffinity::None,
            SessionAffinity::Cookie,
            SessionAffinity::IpCookie,
            SessionAffinity::Header,
            SessionAffinity::SourceIp,
        ];
        let samesite = [
            SameSite::Auto,
            SameSite::Lax,
            SameSite::Strict,
            SameSite::None,
        ];
        let secure = [Secure::Auto, Secure::Always, Secure::Never];
        let zdf = [
            ZeroDowntimeFailover::None,
            ZeroDowntimeFailover::Temporary,
            ZeroDowntimeFailover::Sticky,
        ];
        for i in 0..5 {
            let mut lb = base.clone();
            lb.steering_policy = steering[i % steering.len()];
            lb.session_affinity = affinity[i % affinity.len()];
            let a = &mut lb.session_affinity_attributes;
            a.samesite = samesite[i % samesite.len()];
            a.secure = secure[i % secure.len()];
            a.zero_downtime_failover = zdf[i % zdf.len()];
            let file = load_balancer_to_value(&lb);
            let view = load_balancer(&lb);
            assert_eq!(file["steering_policy"].as_str(), Some(view.steering_policy));
            assert_eq!(
                file["session_affinity"].as_str(),
                Some(view.session_affinity)
            );
            let (fa, va) = (
                &file["session_affinity_attributes"],
                &view.session_affinity_attributes,
            );
            assert_eq!(fa["samesite"].as_str(), Some(va.samesite));
            assert_eq!(fa["secure"].as_str(), Some(va.secure));
            assert_eq!(
                fa["zero_downtime_failover"].as_str(),
                Some(va.zero_downtime_failover)
            );
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}
