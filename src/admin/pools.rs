//! `/v1/pools`, `/v1/pools/{pool}` and `/v1/pools/{pool}/endpoints/{endpoint}`:
//! pools with each endpoint's live health, enabled flag, weight, drain and
//! time left, in-flight requests and last check; `PATCH` of an endpoint's
//! `enabled` (disabling starts its drain) and `weight`, handed to the owner
//! of changes as one batch.

use serde::Serialize;
use serde_json::Value as Json;

use super::call::Call;
use super::response::{allow, describe, json_object, AdminResponse, Answer, ApiError};
use crate::affinity::drain::{drain_state, DrainState};
use crate::changes::Change;
use crate::clock::Now;
use crate::config::{SessionAffinity, Spelled};
use crate::state::{LastCheck, NotFound, State};

/// A pool with its live health and endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolView {
    pub name: String,
    pub enabled: bool,
    pub minimum_origins: usize,
    pub monitor: Option<String>,
    pub origin_steering: OriginSteeringView,
    /// The pool's `read_timeout` in seconds (`None`: `upstream_timeouts.read`).
    pub read_timeout: Option<f64>,
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
    /// Passive health (`outlier_detection`): whole seconds left of the
    /// current ejection, rounded up; 0 when not ejected.
    pub ejected_seconds_left: u64,
    /// Ejections since start.
    pub ejections: u64,
    /// Upgraded connections (WebSockets) open to it now, all load balancers.
    pub upgraded_connections: u64,
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

/// `GET /v1/pools`.
pub fn list(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let state = call.state();
    let all: Vec<PoolView> = (0..state.pools.len())
        .map(|p| pool(state, p, call.now))
        .collect();
    Ok(AdminResponse::ok(&all))
}

/// `GET /v1/pools/{name}` (`PUT` and `DELETE`: [`super::objects::write`]).
pub fn one(call: &Call<'_>, name: &str) -> Answer {
    allow(call.method, &["GET", "PUT", "DELETE"])?;
    let state = call.state();
    let p = state
        .pool_index(name)
        .ok_or_else(|| NotFound::Pool(name.to_string()))?;
    Ok(AdminResponse::ok(&pool(state, p, call.now)))
}

/// `GET` or `PATCH /v1/pools/{pool}/endpoints/{endpoint}`.
pub fn endpoint_call(call: &Call<'_>, pool: &str, endpoint: &str) -> Answer {
    allow(call.method, &["GET", "PATCH"])?;
    let at = call.state().find_endpoint(pool, endpoint)?;
    if call.method == "PATCH" {
        let batch = endpoint_patch(call.body, pool, endpoint)?;
        call.apply(&batch)?;
    }
    Ok(AdminResponse::ok(&endpoint_view(
        call.state(),
        at.pool(),
        at.endpoint(),
        call.now,
    )))
}

/// The changes an endpoint `PATCH` body asks for: `enabled` and `weight`.
fn endpoint_patch(body: &[u8], pool: &str, endpoint: &str) -> Result<Vec<Change>, ApiError> {
    let patch = json_object(body)?;
    let mut problems = Vec::new();
    let mut batch = Vec::new();
    let (pool, endpoint) = (pool.to_string(), endpoint.to_string());
    for (key, v) in &patch {
        match (key.as_str(), v) {
            ("enabled", Json::Bool(enabled)) => batch.push(Change::SetEndpointEnabled {
                pool: pool.clone(),
                endpoint: endpoint.clone(),
                enabled: *enabled,
                drain_started_unix_ms: None,
            }),
            ("enabled", other) => problems.push(format!(
                "enabled: expected a boolean, got {}",
                describe(other)
            )),
            ("weight", Json::Number(n)) => match n.as_f64() {
                Some(weight) if (0.0..=1.0).contains(&weight) => {
                    batch.push(Change::SetEndpointWeight {
                        pool: pool.clone(),
                        endpoint: endpoint.clone(),
                        weight,
                    })
                }
                _ => problems.push(format!("weight: must be between 0 and 1, got {n}")),
            },
            ("weight", other) => problems.push(format!(
                "weight: expected a number, got {}",
                describe(other)
            )),
            ("name" | "address" | "header", _) => {
                problems.push(format!("{key}: cannot be changed at run time"))
            }
            _ => problems.push(format!("{key}: unknown field")),
        }
    }
    if problems.is_empty() {
        Ok(batch)
    } else {
        Err(ApiError::bad_request(problems))
    }
}

pub fn pool(state: &State, index: usize, now: Now) -> PoolView {
    let p = &state.pools[index];
    PoolView {
        name: p.name().to_string(),
        enabled: p.enabled(),
        minimum_origins: p.conf.minimum_origins,
        monitor: p.conf.monitor.clone(),
        origin_steering: OriginSteeringView {
            policy: p.conf.origin_steering.name(),
        },
        read_timeout: p.conf.read_timeout.map(|t| t.as_secs_f64()),
        healthy: crate::route::select::Selector(state).pool_is_healthy(index),
        endpoints: (0..p.endpoints.len())
            .map(|e| endpoint_view(state, index, e, now))
            .collect(),
    }
}

pub fn endpoint_view(state: &State, pool: usize, index: usize, now: Now) -> EndpointView {
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
        ejected_seconds_left: e
            .ejected_until_ms()
            .map_or(0, |until| until.saturating_sub(now.ms).div_ceil(1000)),
        ejections: e.ejections_total(),
        upgraded_connections: crate::metrics::upgraded::open_to(state.pools[pool].name(), e.name()),
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
    i64::try_from(unix_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}
