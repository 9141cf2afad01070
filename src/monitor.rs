//! Health monitors, run as one Pingora background service: every endpoint of
//! a pool that names a monitor is probed every `interval` (`http`, `https` or
//! `tcp`), each probe re-tried `retries` times at once before it counts as
//! failed, and its health flips after `consecutive_down` failed or
//! `consecutive_up` passed probes. Every flip is logged with the endpoint and
//! the reason. Endpoints start healthy and are probed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use tokio::task::JoinSet;

use crate::config::{Config, Monitor, MonitorType};
use crate::state::{LastCheck, Pick, State};

use crate::clock::{stopwatch, unix_ms};

/// Bytes of a response body read to look for `expected_body`.
const BODY_LIMIT: usize = 64 * 1024;

/// The consecutive-result state machine of one endpoint; pure.
#[derive(Debug, Clone, PartialEq)]
pub struct Streak {
    healthy: bool,
    /// Consecutive results that disagree with `healthy`.
    against: u32,
}

impl Streak {
    pub fn new(healthy: bool) -> Self {
        Streak {
            healthy,
            against: 0,
        }
    }

    /// Records a probe result; returns the new health when it flips.
    pub fn observe(&mut self, passed: bool, up_after: u32, down_after: u32) -> Option<bool> {
        if passed == self.healthy {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = if passed { up_after } else { down_after };
        if self.against >= needed {
            self.healthy = passed;
            self.against = 0;
            Some(passed)
        } else {
            None
        }
    }
}

/// One endpoint under one monitor.
struct Job {
    at: Pick,
    monitor: Arc<Monitor>,
    target: SocketAddr,
    host: String,
}

pub struct Monitors {
    state: Arc<State>,
    jobs: Vec<Arc<Job>>,
}

impl Monitors {
    pub fn new(state: Arc<State>, config: &Config) -> Self {
        let mut jobs = Vec::new();
        for (pool_index, pool) in state.pools.iter().enumerate() {
            let Some(monitor) = pool
                .conf
                .monitor
                .as_ref()
                .and_then(|m| config.monitors.get(m))
            else {
                continue;
            };
            let monitor = Arc::new(monitor.clone());
            for (endpoint_index, endpoint) in pool.endpoints.iter().enumerate() {
                let mut target = endpoint.conf.socket_addr;
                if monitor.port != 0 {
                    target.set_port(monitor.port);
                }
                let host = endpoint
                    .conf
                    .host
                    .clone()
                    .unwrap_or_else(|| endpoint.conf.address.clone());
                let Some(at) = state.pick(pool_index, endpoint_index) else {
                    continue;
                };
                jobs.push(Arc::new(Job {
                    at,
                    monitor: Arc::clone(&monitor),
                    target,
                    host,
                }));
            }
        }
        Monitors { state, jobs }
    }

    async fn watch(state: Arc<State>, connector: Arc<Connector>, job: Arc<Job>) {
        let m = &job.monitor;
        let mut streak = Streak::new(true);
        let mut ticker = tokio::time::interval(m.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let pool = state.pools[job.at.pool()].name();
        let endpoint = state.endpoint(job.at);
        loop {
            ticker.tick().await;
            let mut outcome = probe(&connector, &job).await;
            for _ in 0..m.retries {
                if outcome.is_ok() {
                    break;
                }
                outcome = probe(&connector, &job).await;
            }
            if let Ok(rtt) = outcome {
                endpoint.set_rtt(rtt);
            }
            endpoint.record_check(LastCheck {
                unix_ms: unix_ms(),
                failure: outcome.as_ref().err().cloned(),
            });
            let passed = outcome.is_ok();
            if let Some(healthy) = streak.observe(passed, m.consecutive_up, m.consecutive_down) {
                endpoint.set_healthy(healthy);
                match outcome {
                    Ok(rtt) => info!(
                        "pool {pool} endpoint {} ({}) is healthy again: monitor {} passed {} time(s) in a row (last in {} ms)",
                        endpoint.name(),
                        job.target,
                        m.name,
                        m.consecutive_up,
                        rtt.as_millis()
                    ),
                    Err(reason) => warn!(
                        "pool {pool} endpoint {} ({}) is unhealthy: monitor {} failed {} time(s) in a row, last: {reason}",
                        endpoint.name(),
                        job.target,
                        m.name,
                        m.consecutive_down
                    ),
                }
            }
        }
    }
}

/// One probe attempt; `Ok` carries its round-trip time, `Err` the reason.
async fn probe(connector: &Connector, job: &Job) -> Result<Duration, String> {
    let m = &job.monitor;
    let started = stopwatch();
    let attempt = async {
        match m.r#type {
            MonitorType::Tcp => tokio::net::TcpStream::connect(job.target)
                .await
                .map(drop)
                .map_err(|e| format!("tcp connect: {e}")),
            MonitorType::Http | MonitorType::Https => http_probe(connector, job).await,
        }
    };
    match tokio::time::timeout(m.timeout, attempt).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err(format!("timed out after {} ms", m.timeout.as_millis())),
    }
}

async fn http_probe(connector: &Connector, job: &Job) -> Result<(), String> {
    let m = &job.monitor;
    let tls = m.r#type == MonitorType::Https;
    let sni = if tls {
        job.host.split(':').next().unwrap_or_default().to_string()
    } else {
        String::new()
    };
    let mut peer = HttpPeer::new(job.target, tls, sni);
    peer.options.connection_timeout = Some(m.timeout);
    peer.options.read_timeout = Some(m.timeout);
    peer.options.write_timeout = Some(m.timeout);
    if m.allow_insecure {
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
    }

    let mut req = RequestHeader::build(m.method.as_str(), m.path.as_bytes(), None)
        .map_err(|e| format!("building the request: {e}"))?;
    let mut has_host = false;
    let mut has_agent = false;
    for (name, values) in &m.header {
        has_host |= name.eq_ignore_ascii_case("host");
        has_agent |= name.eq_ignore_ascii_case("user-agent");
        for value in values {
            req.append_header(name.clone(), value.as_str())
                .map_err(|e| format!("header {name}: {e}"))?;
        }
    }
    if !has_host {
        req.insert_header(http::header::HOST, job.host.as_str())
            .map_err(|e| format!("header Host: {e}"))?;
    }
    if !has_agent {
        req.insert_header(http::header::USER_AGENT, "tether-monitor")
            .map_err(|e| format!("header User-Agent: {e}"))?;
    }

    let (mut session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect: {}", e.etype().as_str()))?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| format!("sending the request: {}", e.etype().as_str()))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| format!("sending the request: {}", e.etype().as_str()))?;
    session
        .read_response_header()
        .await
        .map_err(|e| format!("reading the response: {}", e.etype().as_str()))?;
    let status = session.response_header().map_or(0, |r| r.status.as_u16());
    if !m.expected_codes.matches(status) {
        return Err(format!("status {status} is not expected"));
    }
    if m.expected_body.is_empty() {
        return Ok(());
    }
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match session.read_response_body().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("reading the body: {}", e.etype().as_str())),
        }
    }
    if contains_ignore_case(&body, m.expected_body.as_bytes()) {
        Ok(())
    } else {
        Err(format!("body does not contain {:?}", m.expected_body))
    }
}

/// `needle` is already lower-case (the config stores `expected_body` so).
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

#[async_trait]
impl BackgroundService for Monitors {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.jobs.is_empty() {
            return;
        }
        let connector = Arc::new(Connector::new(None));
        let mut tasks = JoinSet::new();
        for job in &self.jobs {
            tasks.spawn(Self::watch(
                Arc::clone(&self.state),
                Arc::clone(&connector),
                Arc::clone(job),
            ));
        }
        info!("monitors started for {} endpoint(s)", self.jobs.len());
        let _ = shutdown.changed().await;
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streak_flips_after_the_configured_counts() {
        let mut s = Streak::new(true);
        assert_eq!(s.observe(false, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), None);
        assert_eq!(s.observe(false, 2, 3), Some(false));
        assert_eq!(s.observe(true, 2, 3), None);
        assert_eq!(
            s.observe(false, 2, 3),
            None,
            "a failure resets the up streak"
        );
        assert_eq!(s.observe(true, 2, 3), None);
        assert_eq!(s.observe(true, 2, 3), Some(true));
        assert_eq!(s.observe(true, 2, 3), None);
    }

    #[test]
    fn one_and_one_flips_immediately() {
        let mut s = Streak::new(true);
        assert_eq!(s.observe(false, 1, 1), Some(false));
        assert_eq!(s.observe(true, 1, 1), Some(true));
    }

    #[test]
    fn body_match_ignores_case() {
        assert!(contains_ignore_case(b"Status: OK, all good", b"ok, all"));
        assert!(!contains_ignore_case(b"Status: FAIL", b"ok"));
        assert!(contains_ignore_case(b"anything", b""));
        assert!(!contains_ignore_case(b"", b"x"));
    }
}
