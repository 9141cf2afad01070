//! Recording the request counters (the ground floor: plain atomics, no
//! `State`, nothing of the request path's rooms): the request and
//! affinity-decision counters and the rule counters here, the latency
//! histograms in [`latency`]. The proxy's `logging` records once per
//! request; the admin API renders them with the state's gauges at scrape
//! time (`src/admin/exposition.rs`, `GET /metrics`).
//!
//! - **Exact counters.** Counts are plain atomics keyed by the load
//!   balancer's name and the request's endpoint id (the stable hash of its
//!   pool and endpoint names, so a reload that reorders pools keeps labels
//!   right) and status; the decision counts are a fixed array per load
//!   balancer. Not the `prometheus` crate's `IntCounterVec`: it keys its
//!   series by an FNV hash of the label values concatenated without a
//!   separator, so pool `web` with endpoint `2a` and pool `web2` with
//!   endpoint `a` would silently share one series.
//! - **Cheap request path.** [`record_request`] takes two read locks and does
//!   two hash-map lookups keyed by the load balancer's name and by
//!   `(endpoint id, status)`, then atomic adds; it allocates only the first
//!   time a load balancer or an `(endpoint, status)` pair is seen, and never
//!   panics.

pub mod latency;
pub mod upgraded;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use crate::affinity::decision::Decision;

/// Every decision, in the order of the per-load-balancer counters.
pub const DECISIONS: [Decision; 10] = [
    Decision::None,
    Decision::New,
    Decision::Hit,
    Decision::Expired,
    Decision::Invalid,
    Decision::RepinUnhealthy,
    Decision::RepinDrained,
    Decision::FailoverTemporary,
    Decision::FailoverSticky,
    Decision::RepinShed,
];

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::None => 0,
        Decision::New => 1,
        Decision::Hit => 2,
        Decision::Expired => 3,
        Decision::Invalid => 4,
        Decision::RepinUnhealthy => 5,
        Decision::RepinDrained => 6,
        Decision::FailoverTemporary => 7,
        Decision::FailoverSticky => 8,
        Decision::RepinShed => 9,
    }
}

/// Where no load balancer, pool or endpoint applies.
pub const NONE_LABEL: &str = "-";

/// The counters of one load balancer (or of `-`, requests without one).
#[derive(Debug, Default)]
pub struct LbCounters {
    pub(crate) decisions: [AtomicU64; DECISIONS.len()],
    /// `(endpoint id, status)` → requests.
    pub(crate) requests: RwLock<HashMap<(Option<u64>, u16), AtomicU64>>,
}

impl LbCounters {
    /// Counts one finished request of this load balancer (see [`record_request`]).
    pub fn record(&self, pick: Option<u64>, status: u16, decision: Decision) {
        self.decisions[decision_index(decision)].fetch_add(1, Relaxed);
        let key = (pick, status);
        if let Some(n) = self.requests.read().get(&key) {
            n.fetch_add(1, Relaxed);
            return;
        }
        self.requests
            .write()
            .entry(key)
            .or_default()
            .fetch_add(1, Relaxed);
    }
}

/// The request and decision counters of one process (or of one test).
#[derive(Default)]
pub struct Metrics {
    /// Load balancer name (`-`: none) → its counters.
    pub(crate) lbs: RwLock<HashMap<Box<str>, Arc<LbCounters>>>,
}

/// The process's counters, read by [`render`].
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Counts one finished request: `lb` is the load balancer's name (`-` when
/// none served it), `pick` the id of the endpoint it went to last (after a failover,
/// the failover target), `status` the status written (0: none), `decision`
/// the final affinity decision.
pub fn record_request(lb: &str, pick: Option<u64>, status: u16, decision: Decision) {
    METRICS.record_request(lb, pick, status, decision);
}

/// The process's counters of load balancer `lb`, created on first use. A
/// state resolves them once per load balancer when it is built
/// ([`crate::state::LbState`]), so a request counts without a lookup by name;
/// they outlive reloads, as Prometheus counters must.
pub fn counters_for(lb: &str) -> Arc<LbCounters> {
    METRICS.counters_for(lb)
}

/// Requests each load balancing rule applied to (the last that matched),
/// by `(load balancer, rule)`.
/// Load balancer → rule → requests.
pub(crate) type RuleCounts = HashMap<Box<str>, HashMap<Arc<str>, AtomicU64>>;

pub(crate) static RULES: LazyLock<RwLock<RuleCounts>> = LazyLock::new(Default::default);

/// Counts one request a rule applied to (`tether_rule_requests_total`);
/// allocates only the first time a rule is seen.
pub fn record_rule(lb: &str, rule: &Arc<str>) {
    if let Some(n) = RULES.read().get(lb).and_then(|rules| rules.get(&**rule)) {
        n.fetch_add(1, Relaxed);
        return;
    }
    RULES
        .write()
        .entry(lb.into())
        .or_default()
        .entry(Arc::clone(rule))
        .or_default()
        .fetch_add(1, Relaxed);
}

impl Metrics {
    /// See [`record_request`].
    pub fn record_request(&self, lb: &str, pick: Option<u64>, status: u16, decision: Decision) {
        self.counters_for(lb).record(pick, status, decision);
    }

    /// See [`counters_for`].
    pub fn counters_for(&self, lb: &str) -> Arc<LbCounters> {
        if let Some(counters) = self.lbs.read().get(lb) {
            return Arc::clone(counters);
        }
        Arc::clone(self.lbs.write().entry(lb.into()).or_default())
    }
}

/// Why a request was sent upstream again (`tether_upstream_retries_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The endpoint refused or did not answer the connect: the request went
    /// to another endpoint (SPEC 4.4, `zero_downtime_failover`).
    ConnectFailure,
    /// A pooled connection the endpoint had closed failed before any byte of
    /// the response: the request went again on a fresh connection to the
    /// same endpoint (`crate::proxy` retry policy).
    StaleConnection,
}

impl RetryReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [RetryReason; 2] = [RetryReason::ConnectFailure, RetryReason::StaleConnection];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::ConnectFailure => "connect_failure",
            RetryReason::StaleConnection => "stale_connection",
        }
    }

    fn index(self) -> usize {
        match self {
            RetryReason::ConnectFailure => 0,
            RetryReason::StaleConnection => 1,
        }
    }
}

static RETRIES: [AtomicU64; RetryReason::ALL.len()] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one request sent upstream again.
pub fn record_retry(reason: RetryReason) {
    RETRIES[reason.index()].fetch_add(1, Relaxed);
}

/// Requests sent upstream again for `reason` since start.
pub fn retries(reason: RetryReason) -> u64 {
    RETRIES[reason.index()].load(Relaxed)
}

/// `(pool, endpoint, reason)` → TLS handshakes to an endpoint that failed
/// (`tether_upstream_tls_failures_total`); rare, so one lock and keys by name.
type TlsFailureCounts = HashMap<(Box<str>, Box<str>, &'static str), u64>;

static TLS_FAILURES: LazyLock<parking_lot::Mutex<TlsFailureCounts>> =
    LazyLock::new(Default::default);

/// Counts one failed TLS handshake to `endpoint` of `pool`, `reason` one of
/// [`crate::state::origin_tls::TlsFailure::as_str`].
pub fn record_tls_failure(pool: &str, endpoint: &str, reason: &'static str) {
    *TLS_FAILURES
        .lock()
        .entry((pool.into(), endpoint.into(), reason))
        .or_default() += 1;
}

/// Every `(pool, endpoint, reason)` counted so far and its count.
pub fn tls_failures() -> Vec<([String; 3], u64)> {
    let mut counts: Vec<([String; 3], u64)> = TLS_FAILURES
        .lock()
        .iter()
        .map(|((p, e, r), n)| ([p.to_string(), e.to_string(), r.to_string()], *n))
        .collect();
    counts.sort();
    counts
}
