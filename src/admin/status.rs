//! The status page (`GET /`, one static HTML+JS file, no token: it holds no
//! data) and the small JSON it reads besides `/v1/pools` and `/metrics`
//! (`GET /v1/status`, token needed like every data call): each load
//! balancer's pools in failover order, which serve now, and the session
//! table's size.

use serde::Serialize;

use super::response::{allow, AdminResponse, Answer};
use super::router::Call;
use crate::config::{Spelled, SteeringPolicy};
use crate::state::{LbState, State};

/// The page, compiled in (docs/status-page.md).
pub const PAGE: &str = include_str!("status.html");

const HTML: &str = "text/html; charset=utf-8";

/// Scripts and styles only from the page itself; data calls only to this
/// listener; no frames.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`: the page.
pub fn page(method: &str) -> Answer {
    allow(method, &["GET"])?;
    Ok(AdminResponse::new(200, HTML, PAGE.as_bytes().to_vec())
        .with_header("content-security-policy", CSP.to_string())
        .with_header("x-content-type-options", "nosniff".to_string())
        .with_header("referrer-policy", "no-referrer".to_string()))
}

#[derive(Debug, Serialize)]
struct StatusView {
    version: &'static str,
    load_balancers: Vec<LbStatus>,
    /// Entries in the `header` / `source_ip` session table, and its bound.
    sessions: usize,
    max_sessions: usize,
}

#[derive(Debug, Serialize)]
struct LbStatus {
    name: String,
    enabled: bool,
    session_affinity: &'static str,
    steering_policy: &'static str,
    /// `default_pools` in order, then the fallback pool.
    pools: Vec<PoolRef>,
    /// The pools new requests go to now (see [`serving`]).
    serving: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PoolRef {
    name: String,
    /// `default` or `fallback` (a pool that is both is listed once, `default`).
    role: &'static str,
    healthy: bool,
}

/// `GET /v1/status`.
pub fn handle(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let state = call.state();
    let lbs = state.load_balancers();
    let mut load_balancers: Vec<LbStatus> = lbs.all().map(|lb| lb_status(state, lb)).collect();
    load_balancers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(AdminResponse::ok(&StatusView {
        version: env!("CARGO_PKG_VERSION"),
        load_balancers,
        sessions: state.sessions.len(),
        max_sessions: state.sessions.max_sessions(),
    }))
}

fn lb_status(state: &State, lb: &LbState) -> LbStatus {
    let mut pools: Vec<PoolRef> = lb
        .default_pools
        .iter()
        .map(|&p| PoolRef {
            name: state.pools[p].name().to_string(),
            role: "default",
            healthy: state.pool_is_healthy(p),
        })
        .collect();
    if let Some(f) = lb.fallback_pool.filter(|f| !lb.default_pools.contains(f)) {
        pools.push(PoolRef {
            name: state.pools[f].name().to_string(),
            role: "fallback",
            healthy: state.pool_is_healthy(f),
        });
    }
    let fallback = lb.fallback_pool.map(|f| state.pools[f].name());
    LbStatus {
        name: lb.conf.name.clone(),
        enabled: lb.conf.enabled,
        session_affinity: lb.conf.session_affinity.name(),
        steering_policy: lb.conf.steering_policy.name(),
        serving: serving(lb.conf.enabled, lb.conf.steering_policy, &pools, fallback),
        pools,
    }
}

/// Where new requests go now: with `steering_policy: off`, the first healthy
/// default pool (failover order); with another policy, every healthy default
/// pool (the policy spreads among them); with none healthy, the fallback
/// pool; a disabled load balancer serves nothing. Sessions pinned by
/// affinity may still be served elsewhere.
fn serving(
    enabled: bool,
    policy: SteeringPolicy,
    pools: &[PoolRef],
    fallback: Option<&str>,
) -> Vec<String> {
    if !enabled {
        return Vec::new();
    }
    let mut healthy = pools
        .iter()
        .filter(|p| p.role == "default" && p.healthy)
        .map(|p| p.name.clone());
    let chosen: Vec<String> = if policy == SteeringPolicy::Off {
        healthy.next().into_iter().collect()
    } else {
        healthy.collect()
    };
    if chosen.is_empty() {
        return fallback.map(str::to_string).into_iter().collect();
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, role: &'static str, healthy: bool) -> PoolRef {
        PoolRef {
            name: name.into(),
            role,
            healthy,
        }
    }

    #[test]
    fn serving_follows_failover_order_then_fallback() {
        let pools = [
            p("a", "default", false),
            p("b", "default", true),
            p("c", "default", true),
        ];
        assert_eq!(serving(true, SteeringPolicy::Off, &pools, None), ["b"]);
        assert_eq!(
            serving(true, SteeringPolicy::Random, &pools, None),
            ["b", "c"]
        );
        let down = [p("a", "default", false), p("f", "fallback", false)];
        assert_eq!(serving(true, SteeringPolicy::Off, &down, Some("f")), ["f"]);
        assert!(serving(false, SteeringPolicy::Off, &pools, None).is_empty());
    }

    #[test]
    fn the_page_is_one_file_with_no_external_assets() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for external in ["src=\"http", "href=\"http", "@import", "src=\"//"] {
            assert!(!PAGE.contains(external), "{external}");
        }
        assert!(
            PAGE.len() < 40_000,
            "small enough to read: {} bytes",
            PAGE.len()
        );
    }
}
