//! The Cloudflare monitor as a Pingora [`HealthCheck`]: one check pass is one
//! probe re-tried `retries` times at once; Pingora's registry counts the
//! passes against `consecutive_up` / `consecutive_down` and calls
//! [`HealthCheck::health_status_change`] on a flip, which sets Tether's
//! health atomic and logs the flip with its reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use pingora::{Error, ErrorType, Result};

use super::LOG_TARGET;
use crate::config::Monitor;
use crate::state::{LastCheck, Pick, State};

/// What a [`Backend`] carries in its `ext`: the endpoint's Tether identity
/// (pool and endpoint, never Pingora's `(addr, weight)` hash) and where to
/// probe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub at: Pick,
    /// [`crate::state::EndpointState::id`]: the stable hash of the pool and
    /// endpoint names (what a `__cflb` cookie carries).
    pub id: u64,
    pub pool: String,
    pub endpoint: String,
    /// The endpoint's address with the monitor's `port` applied.
    pub addr: SocketAddr,
    /// `Host` (and TLS SNI) of the probe: the endpoint's `header.Host`, else
    /// its configured address.
    pub host: String,
    /// The pool's `tls` as a `type: https` probe uses it; `None`: the pool
    /// has none (the probe's name is `host`, verified by the system's roots).
    pub tls: Option<crate::state::origin_tls::ProbeTls>,
}

impl Target {
    /// The Pingora backend of this endpoint, carrying `self` in its `ext`.
    pub fn backend(&self) -> Backend {
        let mut ext = http::Extensions::new();
        ext.insert(self.clone());
        Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(self.addr),
            weight: 1,
            ext,
        }
    }

    pub fn of(backend: &Backend) -> Option<&Target> {
        backend.ext.get::<Target>()
    }
}

/// The equivalence key of the health registries: the endpoint's Tether id.
/// Every backend Tether builds carries a [`Target`]; one without would share
/// key 0 (none exists).
pub fn identity(backend: &Backend) -> u64 {
    Target::of(backend).map_or(0, |t| t.id)
}

/// One probe attempt of a monitor against one endpoint: `Ok` carries the
/// round-trip time, `Err` the reason it failed. The network one is
/// [`super::probe::NetProbe`]; tests script their own.
#[async_trait]
pub trait Probe: Send + Sync {
    async fn probe(&self, target: &Target) -> std::result::Result<Duration, String>;
}

/// A monitor bound to Tether's state, as Pingora's [`HealthCheck`].
pub struct MonitorCheck<P> {
    monitor: Arc<Monitor>,
    state: Arc<State>,
    probe: P,
}

impl<P: Probe> MonitorCheck<P> {
    pub fn new(monitor: Arc<Monitor>, state: Arc<State>, probe: P) -> Self {
        MonitorCheck {
            monitor,
            state,
            probe,
        }
    }

    /// One probe and up to `retries` immediate re-tries; the first pass wins.
    async fn probe_with_retries(&self, target: &Target) -> std::result::Result<Duration, String> {
        let mut outcome = self.probe.probe(target).await;
        for _ in 0..self.monitor.retries {
            if outcome.is_ok() {
                break;
            }
            outcome = self.probe.probe(target).await;
        }
        outcome
    }
}

#[async_trait]
impl<P: Probe> HealthCheck for MonitorCheck<P> {
    async fn check(&self, backend: &Backend) -> Result<()> {
        let Some(target) = Target::of(backend) else {
            return Error::e_explain(
                ErrorType::Custom("monitor"),
                "backend carries no Tether endpoint",
            );
        };
        // The endpoint's address now (a host name may have moved, src/services/dns.rs).
        let mut now_at = target.clone();
        let live_addr = self.state.endpoint(target.at).socket_addr();
        now_at.addr.set_ip(live_addr.ip());
        if self.monitor.port == 0 {
            now_at.addr.set_port(live_addr.port());
        }
        let target = &now_at;
        let started = crate::clock::stopwatch();
        let outcome = self.probe_with_retries(target).await;
        crate::metrics::latency::record_probe(target.id, started.elapsed());
        let endpoint = self.state.endpoint(target.at);
        if let Ok(rtt) = outcome {
            endpoint.set_rtt(rtt);
        }
        endpoint.record_check(LastCheck {
            unix_ms: crate::clock::unix_ms(),
            failure: outcome.as_ref().err().cloned(),
        });
        outcome
            .map(drop)
            .or_else(|reason| Error::e_explain(ErrorType::Custom("monitor"), reason))
    }

    /// Pingora's counter is exactly the former `Streak`: results that disagree
    /// with the current health count up, one that agrees resets the count,
    /// and the health flips (count reset) when it reaches this threshold.
    fn health_threshold(&self, success: bool) -> usize {
        threshold(&self.monitor, success)
    }

    async fn health_status_change(&self, backend: &Backend, healthy: bool) {
        let Some(target) = Target::of(backend) else {
            return;
        };
        let endpoint = self.state.endpoint(target.at);
        let was = endpoint.set_healthy(healthy);
        if healthy && !was {
            endpoint.mark_usable_since(self.state.clock.now_ms());
        }
        let line = flip_line(
            target,
            &self.monitor,
            healthy,
            endpoint.last_check().as_ref(),
            endpoint.rtt(),
        );
        if healthy {
            info!(target: LOG_TARGET, "{line}");
        } else {
            warn!(target: LOG_TARGET, "{line}");
        }
    }

    fn backend_summary(&self, backend: &Backend) -> String {
        match Target::of(backend) {
            Some(t) => summary(t),
            None => format!("{backend:?}"),
        }
    }
}

/// Consecutive passes (`success`) or failures needed to flip an endpoint.
pub fn threshold(monitor: &Monitor, success: bool) -> usize {
    let n = if success {
        monitor.consecutive_up
    } else {
        monitor.consecutive_down
    };
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn summary(t: &Target) -> String {
    format!("pool {} endpoint {} ({})", t.pool, t.endpoint, t.addr)
}

/// The log line of a flip; `last` and `rtt` are the endpoint's last probe.
pub fn flip_line(
    t: &Target,
    monitor: &Monitor,
    healthy: bool,
    last: Option<&LastCheck>,
    rtt: Option<Duration>,
) -> String {
    if healthy {
        format!(
            "{} is healthy again: monitor {} passed {} time(s) in a row (last in {} ms)",
            summary(t),
            monitor.name,
            monitor.consecutive_up,
            rtt.unwrap_or_default().as_millis()
        )
    } else {
        let reason = last.and_then(|c| c.failure.as_deref()).unwrap_or("unknown");
        format!(
            "{} is unhealthy: monitor {} failed {} time(s) in a row, last: {reason}",
            summary(t),
            monitor.name,
            monitor.consecutive_down
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{CodePattern, ExpectedCodes, MonitorType};
    use std::collections::BTreeMap;

    pub fn monitor(interval_ms: u64, retries: u32, up: u32, down: u32) -> Monitor {
        Monitor {
            name: "m".into(),
            r#type: MonitorType::Http,
            method: "GET".into(),
            path: "/health".into(),
            port: 0,
            expected_codes: ExpectedCodes(vec![CodePattern::Class(2)]),
            expected_body: String::new(),
            header: BTreeMap::new(),
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(interval_ms),
            retries,
            consecutive_up: up,
            consecutive_down: down,
            allow_insecure: false,
            grpc_service: String::new(),
        }
    }

    pub fn target(pool: &str, endpoint: &str, port: u16) -> Target {
        Target {
            at: Pick::unchecked(0, 0),
            id: crate::state::endpoint_id(pool, endpoint),
            pool: pool.into(),
            endpoint: endpoint.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: format!("127.0.0.1:{port}"),
            tls: None,
        }
    }

    #[test]
    fn backends_are_keyed_by_tether_identity_not_address() {
        let a = target("a", "web", 8080);
        let b = target("b", "web", 8080);
        let (ba, bb) = (a.backend(), b.backend());
        assert_eq!(ba, bb, "Pingora sees one (addr, weight)");
        assert_ne!(identity(&ba), identity(&bb));
        assert_eq!(identity(&ba), crate::state::endpoint_id("a", "web"));
        assert_eq!(Target::of(&bb), Some(&b));
        assert_eq!(identity(&Backend::new("127.0.0.1:1").unwrap()), 0);
    }

    #[test]
    fn thresholds_are_the_consecutive_counts() {
        let m = monitor(100, 0, 2, 3);
        assert_eq!(threshold(&m, true), 2);
        assert_eq!(threshold(&m, false), 3);
    }

    #[test]
    fn flip_lines_name_the_endpoint_and_the_reason() {
        let t = target("p", "web-1", 8080);
        let m = monitor(100, 0, 2, 3);
        let failed = LastCheck {
            unix_ms: 1,
            failure: Some("status 503 is not expected".into()),
        };
        assert_eq!(
            flip_line(&t, &m, false, Some(&failed), None),
            "pool p endpoint web-1 (127.0.0.1:8080) is unhealthy: monitor m failed 3 time(s) in a row, last: status 503 is not expected"
        );
        assert_eq!(
            flip_line(&t, &m, true, None, Some(Duration::from_micros(12_500))),
            "pool p endpoint web-1 (127.0.0.1:8080) is healthy again: monitor m passed 2 time(s) in a row (last in 12 ms)"
        );
    }
}
