//! The Prometheus exposition (SPEC 5, `GET /metrics`), beside the admin API
//! that serves it: the counters recorded by `crate::metrics` (the ground
//! floor, which imports no state) rendered with the gauges computed at
//! scrape time from [`State`] (health, enabled, weight, in-flight,
//! connections, drain time left, session-table size), the front door's
//! counts, the rules', passive health's, the latency histograms and this
//! replica's cluster link.
//!
//! - **No registry.** [`render`] builds the metric families itself at scrape
//!   time and writes them with the crate's `TextEncoder` (exposition format
//!   0.0.4). Series with equal label values (e.g. an endpoint literally named
//!   `-`) are added together, never written twice.
//! - **Every request that reaches `logging` is counted once in each counter
//!   family**, so `sum(tether_affinity_decisions_total) ==
//!   sum(tether_requests_total)`: decision `none` is counted too (affinity
//!   off, `header` without its headers, no load balancer, a reply before
//!   routing). `-` stands for "none" in the load balancer, pool and endpoint
//!   labels; status `0` means no response was written.
//! - Every configured load balancer has all its decision series from the
//!   start (0 until seen), so `rate()` works from the first request; `-`
//!   (requests without a load balancer) only has `none`, once seen.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::TextEncoder;

use crate::affinity::drain::{drain_state, DrainState};
use crate::config::SessionAffinity;
use crate::metrics::{latency, LbCounters, Metrics, DECISIONS, METRICS, NONE_LABEL, RULES};
use crate::route::select::Selector;
use crate::state::State;

/// `tether_rule_requests_total`: every configured rule (0 until seen) and
/// every rule seen since start.
fn rule_families(state: &State) -> Vec<MetricFamily> {
    let mut counts: BTreeMap<[String; 2], u64> = BTreeMap::new();
    for lb in state.load_balancers().all() {
        for rule in &lb.conf.rules {
            counts.insert([lb.conf.name.clone(), rule.name.clone()], 0);
        }
    }
    for (lb, rules) in RULES.read().iter() {
        for (rule, n) in rules {
            *counts
                .entry([lb.to_string(), rule.to_string()])
                .or_default() += n.load(Relaxed);
        }
    }
    vec![family(
        "tether_rule_requests_total",
        "Requests by load balancer and the load balancing rule that applied to them (the last that matched).",
        MetricType::COUNTER,
        &["load_balancer", "rule"],
        counts.into_iter().map(|(l, n)| (l, n as f64)),
    )]
}

/// Passive health, for the endpoints of pools with `outlier_detection`:
/// `tether_endpoint_ejected` (1 while ejected) and
/// `tether_endpoint_ejections_total`.
fn outlier_families(state: &State) -> Vec<MetricFamily> {
    let now_ms = state.clock.now_ms();
    let mut ejected: BTreeMap<[String; 2], f64> = BTreeMap::new();
    let mut total: BTreeMap<[String; 2], f64> = BTreeMap::new();
    for pool in state.pools.iter().filter(|p| p.outlier.is_some()) {
        for e in &pool.endpoints {
            let key = [pool.name().to_string(), e.name().to_string()];
            ejected.insert(key.clone(), if e.ejected(now_ms) { 1.0 } else { 0.0 });
            total.insert(key, e.ejections_total() as f64);
        }
    }
    vec![
        family(
            "tether_endpoint_ejected",
            "1 while passive health (outlier_detection) has the endpoint ejected.",
            MetricType::GAUGE,
            &["pool", "endpoint"],
            ejected.into_iter(),
        ),
        family(
            "tether_endpoint_ejections_total",
            "Ejections of the endpoint by passive health (outlier_detection) since start.",
            MetricType::COUNTER,
            &["pool", "endpoint"],
            total.into_iter(),
        ),
    ]
}

/// Upgraded connections (WebSockets): `tether_upgraded_connections` (open
/// now) and `tether_upgraded_connections_total` (opened since start), by
/// load balancer, pool and endpoint: every endpoint of each load balancer's
/// pools (0 until seen), and every one seen since start (a reload may have
/// removed it while its connections were open).
fn upgraded_families(state: &State) -> Vec<MetricFamily> {
    let mut open: BTreeMap<[String; 3], f64> = BTreeMap::new();
    for lb in state.load_balancers().all() {
        let mut pools = lb.default_pools.clone();
        pools.extend(lb.fallback_pool);
        for pool in pools.iter().filter_map(|&p| state.pools.get(p)) {
            for e in &pool.endpoints {
                let key = [
                    lb.conf.name.clone(),
                    pool.name().to_string(),
                    e.name().to_string(),
                ];
                open.insert(key, 0.0);
            }
        }
    }
    let mut opened = open.clone();
    for ((lb, pool, endpoint), now, total) in crate::metrics::upgraded::snapshot() {
        let key = [lb.to_string(), pool.to_string(), endpoint.to_string()];
        *open.entry(key.clone()).or_default() += now as f64;
        *opened.entry(key).or_default() += total as f64;
    }
    const LPE: &[&str] = &["load_balancer", "pool", "endpoint"];
    vec![
        gauge(
            "tether_upgraded_connections",
            "Upgraded client connections (WebSockets, 101 Switching Protocols) open now, by load balancer, pool and endpoint.",
            LPE,
            open,
        ),
        family(
            "tether_upgraded_connections_total",
            "Client connections upgraded (WebSockets, 101 Switching Protocols) since start, by load balancer, pool and endpoint.",
            MetricType::COUNTER,
            LPE,
            opened.into_iter(),
        ),
    ]
}

/// The Prometheus text exposition of the process's metrics (`GET /metrics`,
/// content type [`prometheus::TEXT_FORMAT`]).
pub fn render(state: &State) -> String {
    METRICS.render(state)
}

impl Metrics {
    /// See [`render`].
    pub fn render(&self, state: &State) -> String {
        let mut families = self.counter_families(state);
        families.extend(gauge_families(state));
        families.extend(front_door_families());
        families.extend(rule_families(state));
        families.extend(outlier_families(state));
        families.extend(upgraded_families(state));
        families.extend(latency_families(state));
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
            // Only on an empty family or name, which are filtered or static.
            log::error!("metrics: cannot encode: {e}");
        }
        out
    }

    fn counter_families(&self, state: &State) -> Vec<MetricFamily> {
        let mut requests: BTreeMap<[String; 4], u64> = BTreeMap::new();
        let mut decisions: BTreeMap<[String; 2], u64> = BTreeMap::new();
        // Every configured load balancer's decisions, 0 until seen.
        for lb in state.load_balancers().all() {
            for d in DECISIONS {
                decisions.insert([lb.conf.name.clone(), d.as_str().to_string()], 0);
            }
        }
        let lbs: Vec<(String, Arc<LbCounters>)> = self
            .lbs
            .read()
            .iter()
            .map(|(name, c)| (name.to_string(), Arc::clone(c)))
            .collect();
        for (lb, counters) in lbs {
            for (d, n) in DECISIONS.iter().zip(&counters.decisions) {
                let (key, n) = ([lb.clone(), d.as_str().to_string()], n.load(Relaxed));
                // Unconfigured names (`-`) only have the decisions they saw.
                if n > 0 || decisions.contains_key(&key) {
                    *decisions.entry(key).or_default() += n;
                }
            }
            for (&(pick, status), n) in counters.requests.read().iter() {
                let (pool, endpoint) = names(state, pick);
                *requests
                    .entry([lb.clone(), pool, endpoint, status.to_string()])
                    .or_default() += n.load(Relaxed);
            }
        }
        vec![
            family(
                "tether_requests_total",
                "Requests finished, by load balancer, pool, endpoint (the last one tried) and status (0: no response written); - where none applies.",
                MetricType::COUNTER,
                &["load_balancer", "pool", "endpoint", "status"],
                requests.into_iter().map(|(l, n)| (l, n as f64)),
            ),
            family(
                "tether_affinity_decisions_total",
                "Requests by load balancer and final session-affinity decision (none: no affinity applied).",
                MetricType::COUNTER,
                &["load_balancer", "decision"],
                decisions.into_iter().map(|(l, n)| (l, n as f64)),
            ),
        ]
    }
}

/// The pool and endpoint names of endpoint id `pick`, `-` for none (or for
/// an endpoint a reload removed).
fn names(state: &State, pick: Option<u64>) -> (String, String) {
    pick.and_then(|id| {
        let at = state.endpoint_by_id(id)?;
        let pool = state.pools.get(at.pool())?;
        Some((
            pool.name().to_string(),
            state.endpoint(at).name().to_string(),
        ))
    })
    .unwrap_or_else(|| (NONE_LABEL.to_string(), NONE_LABEL.to_string()))
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The gauges, read from `state` now.
fn gauge_families(state: &State) -> Vec<MetricFamily> {
    type Series<const N: usize> = BTreeMap<[String; N], f64>;
    let (mut healthy, mut enabled, mut weight, mut in_flight, mut connections): (
        Series<2>,
        Series<2>,
        Series<2>,
        Series<2>,
        Series<2>,
    ) = Default::default();
    let (mut pool_healthy, mut pool_enabled, mut pool_in_flight): (
        Series<1>,
        Series<1>,
        Series<1>,
    ) = Default::default();
    for (i, pool) in state.pools.iter().enumerate() {
        let p = pool.name().to_string();
        pool_healthy.insert([p.clone()], flag(Selector(state).pool_is_healthy(i)));
        pool_enabled.insert([p.clone()], flag(pool.enabled()));
        pool_in_flight.insert([p.clone()], pool.in_flight() as f64);
        for e in &pool.endpoints {
            let key = [p.clone(), e.name().to_string()];
            healthy.insert(key.clone(), flag(e.healthy()));
            enabled.insert(key.clone(), flag(e.enabled()));
            weight.insert(key.clone(), e.weight());
            in_flight.insert(key.clone(), e.in_flight() as f64);
            connections.insert(key, e.connections() as f64);
        }
    }

    // Drains are per load balancer: only one with affinity has sessions to
    // drain (SPEC 4.3), and only over its own pools.
    let now_ms = state.clock.now_ms();
    let mut drain: Series<3> = BTreeMap::new();
    for lb in state.load_balancers().all() {
        if lb.conf.session_affinity == SessionAffinity::None {
            continue;
        }
        let mut pools = lb.default_pools.clone();
        pools.extend(lb.fallback_pool);
        pools.sort_unstable();
        pools.dedup();
        for p in pools {
            let Some(pool) = state.pools.get(p) else {
                continue;
            };
            for e in &pool.endpoints {
                if let DrainState::Draining { left_ms } =
                    drain_state(e.disabled_since(), lb.drain_ms, now_ms)
                {
                    drain.insert(
                        [
                            lb.conf.name.clone(),
                            pool.name().to_string(),
                            e.name().to_string(),
                        ],
                        left_ms as f64 / 1000.0,
                    );
                }
            }
        }
    }

    const PE: &[&str] = &["pool", "endpoint"];
    const P: &[&str] = &["pool"];
    vec![
        gauge("tether_endpoint_healthy", "1 while the endpoint's monitor calls it healthy (always 1 without a monitor).", PE, healthy),
        gauge("tether_endpoint_enabled", "1 while the endpoint is enabled (in the file or through the admin API).", PE, enabled),
        gauge("tether_endpoint_weight", "The endpoint's weight (0 to 1).", PE, weight),
        gauge("tether_endpoint_in_flight", "Requests being forwarded to the endpoint now.", PE, in_flight),
        gauge("tether_endpoint_connections", "Upstream connections to the endpoint held by requests now.", PE, connections),
        gauge("tether_pool_healthy", "1 while the pool is enabled and has at least minimum_origins healthy enabled endpoints.", P, pool_healthy),
        gauge("tether_pool_enabled", "1 while the pool is enabled.", P, pool_enabled),
        gauge("tether_pool_in_flight", "Requests being forwarded to the pool's endpoints now.", P, pool_in_flight),
        gauge(
            "tether_endpoint_drain_seconds_left",
            "Seconds until a disabled endpoint's drain ends, for each load balancer with affinity whose pools hold it; absent when not draining.",
            &["load_balancer", "pool", "endpoint"],
            drain,
        ),
        gauge("tether_sessions", "Entries in the header / source_ip session table (all load balancers).", &[], BTreeMap::from([([], state.sessions.len() as f64)])),
        gauge("tether_sessions_max", "Bound of the session table (tether.max_sessions).", &[], BTreeMap::from([([], state.sessions.max_sessions() as f64)])),
    ]
}

/// The front door's connection gauge and refusal counters (process-wide).
fn front_door_families() -> Vec<MetricFamily> {
    use crate::front_door::{COUNTERS, REFUSALS};
    let refusals: BTreeMap<[String; 1], f64> = REFUSALS
        .iter()
        .zip(&COUNTERS.refusals)
        .map(|(r, n)| ([r.reason().to_string()], n.load(Relaxed) as f64))
        .collect();
    vec![
        gauge(
            "tether_client_connections",
            "Client connections open now (client_limits.max_connections bounds them).",
            &[],
            BTreeMap::from([([], COUNTERS.open.load(Relaxed) as f64)]),
        ),
        family(
            "tether_client_connections_refused_total",
            "Client connections closed at once because client_limits.max_connections were open.",
            MetricType::COUNTER,
            &[],
            [([], COUNTERS.refused_connections.load(Relaxed) as f64)].into_iter(),
        ),
        family(
            "tether_upstream_retries_total",
            "Requests sent upstream again, by reason (connect_failure: the connect failed and the request went to another endpoint; stale_connection: a pooled connection the endpoint had closed failed before any byte of the response, and the request, its body not yet sent, went again on a fresh connection to the same endpoint).",
            MetricType::COUNTER,
            &["reason"],
            crate::metrics::RetryReason::ALL
                .iter()
                .map(|r| ([r.as_str().to_string()], crate::metrics::retries(*r) as f64)),
        ),
        family(
            "tether_upstream_tls_failures_total",
            "TLS handshakes to endpoints that failed, by pool, endpoint and reason (certificate: the endpoint's certificate was refused; alert: the endpoint refused the handshake; handshake: any other handshake error). Each is a connect failure (retried elsewhere).",
            MetricType::COUNTER,
            &["pool", "endpoint", "reason"],
            crate::metrics::tls_failures()
                .into_iter()
                .map(|(labels, n)| (labels, n as f64)),
        ),
        family(
            "tether_access_log_dropped_total",
            "Access-log lines dropped because the writer thread was 4 MiB of lines behind on their worker thread (a request never waits for the log).",
            MetricType::COUNTER,
            &[],
            [([], crate::access_log::dropped() as f64)].into_iter(),
        ),
        family(
            "tether_client_refusals_total",
            "Requests refused before routing by the front door or Pingora's parser, by reason (header_timeout: 408, header_too_large: 431, invalid_target: 400 for a target with a forbidden byte, invalid_chunk: 400 for a chunk-size line without digits, invalid_request: Pingora's 400).",
            MetricType::COUNTER,
            &["reason"],
            refusals.into_iter(),
        ),
    ]
}

fn gauge<const N: usize>(
    name: &str,
    help: &str,
    labels: &[&str],
    series: BTreeMap<[String; N], f64>,
) -> MetricFamily {
    family(name, help, MetricType::GAUGE, labels, series)
}

/// This replica's link to the cluster (`tether.cluster`), appended to
/// [`render`]'s text: connected or not, the last full resync, and what it
/// wrote, received and dropped.
pub fn render_cluster(cluster: &crate::cluster::Status) -> String {
    let one = |v: f64| [([cluster.name.clone()], v)];
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64;
    let families = vec![
        family(
            "tether_cluster_connected",
            "1 while this replica's link to Redis is up and resynced, 0 while it serves from its own state.",
            MetricType::GAUGE,
            &["cluster"],
            one(flag(cluster.connected())),
        ),
        family(
            "tether_cluster_last_sync_timestamp_seconds",
            "Unix time of this replica's last full resync from Redis (0: never).",
            MetricType::GAUGE,
            &["cluster"],
            one(cluster.last_sync_unix_ms() as f64 / 1000.0),
        ),
        family(
            "tether_cluster_pins_written_total",
            "Session pins that deviate from the hash ring written to Redis by this replica.",
            MetricType::COUNTER,
            &["cluster"],
            one(count(&cluster.pins_written)),
        ),
        family(
            "tether_cluster_pins_received_total",
            "Session pins of other replicas taken into this replica's session table.",
            MetricType::COUNTER,
            &["cluster"],
            one(count(&cluster.pins_received)),
        ),
        family(
            "tether_cluster_pins_dropped_total",
            "Session pins not shared because the queue to Redis was full (Redis away or slow).",
            MetricType::COUNTER,
            &["cluster"],
            one(count(&cluster.pins_dropped)),
        ),
        family(
            "tether_cluster_changes_received_total",
            "Batches of run-time changes made on other replicas and applied here.",
            MetricType::COUNTER,
            &["cluster"],
            one(count(&cluster.changes_received)),
        ),
        family(
            "tether_cluster_rejected_total",
            "Events, stored changes and stored pins read from Redis and dropped, by reason (bad_mac: not signed with this cluster's key for where it was found; malformed; too_large: over 64 KiB, or a changes hash past its bounds; out_of_range: a value a change or pin may not have; stale: an event more than 60 s old or ahead, or received twice).",
            MetricType::COUNTER,
            &["cluster", "reason"],
            crate::cluster::wire::Rejected::ALL.map(|r| {
                (
                    [cluster.name.clone(), r.reason().to_string()],
                    cluster.rejected(r) as f64,
                )
            }),
        ),
    ];
    let mut out = String::new();
    if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
        log::error!("metrics: cannot encode: {e}");
    }
    out
}

/// A metric family of `kind` whose series are `(label values, value)`, the
/// values in the order of `labels`.
fn family<const N: usize>(
    name: &str,
    help: &str,
    kind: MetricType,
    labels: &[&str],
    series: impl IntoIterator<Item = ([String; N], f64)>,
) -> MetricFamily {
    let metrics = series
        .into_iter()
        .map(|(values, v)| {
            let mut m = proto::Metric::default();
            m.set_label(
                labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name(name.to_string());
                        pair.set_value(value);
                        pair
                    })
                    .collect(),
            );
            match kind {
                MetricType::COUNTER => {
                    let mut c = proto::Counter::default();
                    c.set_value(v);
                    m.set_counter(c);
                }
                _ => {
                    let mut g = proto::Gauge::default();
                    g.set_value(v);
                    m.set_gauge(g);
                }
            }
            m
        })
        .collect();
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

// ---------------------------------------------------------------- latency histograms

/// The labels of a series: the load balancer's name and the endpoint's pool
/// and endpoint names; `None` when the series names what a reload removed.
fn labels<T>(state: &State, s: &latency::Series<T>) -> Option<[String; 3]> {
    let lb = if s.lb == 0 {
        "-".to_string()
    } else {
        let lbs = state.load_balancers();
        let lb = lbs.all().find(|lb| lb.id == s.lb)?;
        lb.conf.name.clone()
    };
    let (pool, endpoint) = match s.endpoint {
        None => ("-".to_string(), "-".to_string()),
        Some(id) => {
            let at = state.endpoint_by_id(id)?;
            (
                state.pools.get(at.pool())?.name().to_string(),
                state.endpoint(at).name().to_string(),
            )
        }
    };
    Some([lb, pool, endpoint])
}

fn metric(names: &[&str], values: &[String], h: &latency::Histogram) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(
        names
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(n.to_string());
                pair.set_value(v.clone());
                pair
            })
            .collect(),
    );
    m.set_histogram(h.proto());
    m
}

fn histogram_family(name: &str, help: &str, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(metrics);
    f
}

/// The histogram families, labelled from `state` now. Series that are
/// still empty are left out (the overflow one until it is used).
fn latency_families(state: &State) -> Vec<MetricFamily> {
    const LPE: &[&str] = &["load_balancer", "pool", "endpoint"];
    let (mut total, mut upstream, mut probes) = (Vec::new(), Vec::new(), Vec::new());
    for s in latency::request_series() {
        let Some(l) = labels(state, s) else { continue };
        if s.data.total.count() > 0 {
            total.push(metric(LPE, &l, &s.data.total));
        }
        if s.data.upstream.count() > 0 {
            upstream.push(metric(LPE, &l, &s.data.upstream));
        }
    }
    for s in latency::probe_series() {
        let Some([_, pool, endpoint]) = labels(state, s) else {
            continue;
        };
        if s.data.count() > 0 {
            probes.push(metric(&["pool", "endpoint"], &[pool, endpoint], &s.data));
        }
    }
    vec![
        histogram_family(
            "tether_request_duration_seconds",
            "Time from a request's arrival to its end (response written), by load balancer, pool and endpoint (the last one tried); - where none applies.",
            total,
        ),
        histogram_family(
            "tether_upstream_response_duration_seconds",
            "Time from choosing the endpoint (connect included) to its response header, by load balancer, pool and endpoint.",
            upstream,
        ),
        histogram_family(
            "tether_monitor_probe_duration_seconds",
            "Time of one monitor check (the probe and its immediate re-tries), by pool and endpoint.",
            probes,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::affinity::decision::Decision;
    use crate::affinity::table::TablePin;
    use crate::config::OriginSteering;
    use crate::state::fixtures::{config, pool, set_health};

    fn state() -> State {
        let cfg = config(
            vec![
                pool("p", 2, OriginSteering::Random),
                pool("q", 1, OriginSteering::Random),
            ],
            &["p"],
            Some("q"),
        );
        State::new(&cfg, CookieKeys::random())
    }

    fn at(pool: usize, endpoint: usize) -> Option<u64> {
        at_in(&state(), pool, endpoint)
    }

    fn at_in(state: &State, pool: usize, endpoint: usize) -> Option<u64> {
        Some(state.endpoint(state.pick(pool, endpoint)?).id)
    }

    /// The value of the series `line_start` (name and labels as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn counters_are_exact_and_explained() {
        let state = state();
        let m = Metrics::default();
        for _ in 0..3 {
            m.record_request("*", at(0, 1), 200, Decision::New);
        }
        m.record_request("*", at(0, 1), 200, Decision::Hit);
        m.record_request("*", at(1, 0), 502, Decision::FailoverSticky);
        m.record_request("-", None, 404, Decision::None);
        m.record_request("-", None, 0, Decision::None);
        let text = m.render(&state);

        for name in ["tether_requests_total", "tether_affinity_decisions_total"] {
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(text.contains(&format!("# TYPE {name} counter\n")), "{text}");
        }
        let req = |lb: &str, pool: &str, ep: &str, status: &str| {
            value(
                &text,
                &format!("tether_requests_total{{load_balancer=\"{lb}\",pool=\"{pool}\",endpoint=\"{ep}\",status=\"{status}\"}}"),
            )
        };
        assert_eq!(req("*", "p", "p-1", "200"), Some(4.0));
        assert_eq!(req("*", "q", "q-0", "502"), Some(1.0));
        assert_eq!(req("-", "-", "-", "404"), Some(1.0));
        assert_eq!(req("-", "-", "-", "0"), Some(1.0));
        assert_eq!(
            req("*", "p", "p-0", "200"),
            None,
            "unseen series are absent"
        );

        let dec = |lb: &str, d: &str| {
            value(
                &text,
                &format!(
                    "tether_affinity_decisions_total{{load_balancer=\"{lb}\",decision=\"{d}\"}}"
                ),
            )
        };
        assert_eq!(dec("*", "new"), Some(3.0));
        assert_eq!(dec("*", "hit"), Some(1.0));
        assert_eq!(dec("*", "failover_sticky"), Some(1.0));
        assert_eq!(dec("-", "none"), Some(2.0));
        assert_eq!(dec("-", "new"), None, "no zero series for `-`");
        // A configured load balancer has every decision from the start.
        for d in DECISIONS {
            assert!(dec("*", d.as_str()).is_some(), "{}", d.as_str());
        }
        assert_eq!(dec("*", "expired"), Some(0.0));
        // Each request is counted once in each family.
        let sum = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        assert_eq!(sum("tether_requests_total{"), 7.0);
        assert_eq!(sum("tether_affinity_decisions_total{"), 7.0);
    }

    #[test]
    fn names_that_concatenate_alike_stay_apart() {
        let mut web = pool("web", 1, OriginSteering::Random);
        web.endpoints[0].name = "2a".into();
        let mut web2 = pool("web2", 1, OriginSteering::Random);
        web2.endpoints[0].name = "a".into();
        let state = State::new(
            &config(vec![web, web2], &["web"], None),
            CookieKeys::random(),
        );
        let m = Metrics::default();
        let (web, web2) = (
            state.pool_index("web").unwrap(),
            state.pool_index("web2").unwrap(),
        );
        m.record_request("*", at_in(&state, web, 0), 200, Decision::None);
        m.record_request("*", at_in(&state, web2, 0), 200, Decision::None);
        m.record_request("*", at_in(&state, web2, 0), 200, Decision::None);
        let text = m.render(&state);
        assert_eq!(
            value(&text, "tether_requests_total{load_balancer=\"*\",pool=\"web\",endpoint=\"2a\",status=\"200\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, "tether_requests_total{load_balancer=\"*\",pool=\"web2\",endpoint=\"a\",status=\"200\"}"),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn gauges_follow_the_state() {
        let state = Arc::new(state());
        set_health(&state, "p", &[true, false]);
        let q0 = state.find_endpoint("q", "q-0").unwrap();
        crate::changes::test_door::set_endpoint_weight(&state, q0, 0.25);
        let held = state.begin_request(crate::state::Pick::unchecked(
            state.pool_index("p").unwrap(),
            0,
        ));
        state.sessions.put(
            1,
            TablePin {
                pool: 0,
                endpoint: 0,
            },
            state.clock.now_ms(),
        );
        state.sessions.put(
            2,
            TablePin {
                pool: 0,
                endpoint: 0,
            },
            state.clock.now_ms(),
        );

        let text = Metrics::default().render(&state);
        for name in [
            "tether_endpoint_healthy",
            "tether_endpoint_enabled",
            "tether_endpoint_weight",
            "tether_endpoint_in_flight",
            "tether_pool_in_flight",
            "tether_pool_healthy",
            "tether_sessions",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} gauge\n")),
                "{name}\n{text}"
            );
        }
        let ep = |name: &str, pool: &str, e: &str| {
            value(
                &text,
                &format!("{name}{{pool=\"{pool}\",endpoint=\"{e}\"}}"),
            )
        };
        assert_eq!(ep("tether_endpoint_healthy", "p", "p-0"), Some(1.0));
        assert_eq!(ep("tether_endpoint_healthy", "p", "p-1"), Some(0.0));
        assert_eq!(ep("tether_endpoint_enabled", "p", "p-1"), Some(1.0));
        assert_eq!(ep("tether_endpoint_weight", "q", "q-0"), Some(0.25));
        assert_eq!(ep("tether_endpoint_weight", "p", "p-0"), Some(1.0));
        assert_eq!(ep("tether_endpoint_in_flight", "p", "p-0"), Some(1.0));
        assert_eq!(ep("tether_endpoint_in_flight", "p", "p-1"), Some(0.0));
        assert_eq!(value(&text, "tether_pool_in_flight{pool=\"p\"}"), Some(1.0));
        assert_eq!(value(&text, "tether_pool_in_flight{pool=\"q\"}"), Some(0.0));
        assert_eq!(value(&text, "tether_pool_healthy{pool=\"p\"}"), Some(1.0));
        assert_eq!(value(&text, "tether_sessions"), Some(2.0));
        assert_eq!(value(&text, "tether_sessions_max"), Some(10.0));
        assert!(
            !text.contains("tether_endpoint_drain_seconds_left"),
            "{text}"
        );
        assert!(
            !text.contains("tether_requests_total"),
            "no request yet: {text}"
        );

        drop(held);
        set_health(&state, "p", &[false, false]);
        let text = Metrics::default().render(&state);
        assert_eq!(value(&text, "tether_pool_in_flight{pool=\"p\"}"), Some(0.0));
        assert_eq!(value(&text, "tether_pool_healthy{pool=\"p\"}"), Some(0.0));
    }

    #[test]
    fn drain_time_left_only_while_draining_under_affinity() {
        let mut cfg = config(vec![pool("p", 2, OriginSteering::Random)], &["p"], None);
        let mut shop = cfg.load_balancers["*"].clone();
        shop.name = "shop.test".into();
        cfg.load_balancers.insert(shop.name.clone(), shop);
        for lb in cfg.load_balancers.values_mut() {
            lb.session_affinity_attributes.drain_duration = std::time::Duration::from_secs(60);
        }
        cfg.load_balancers.get_mut("*").unwrap().session_affinity = SessionAffinity::Cookie;
        let state = State::new(&cfg, CookieKeys::random());
        let p1 = state.find_endpoint("p", "p-1").unwrap();
        crate::changes::test_door::set_endpoint_enabled(&state, p1, false, state.clock.now_ms());

        let text = Metrics::default().render(&state);
        assert!(
            text.contains("# TYPE tether_endpoint_drain_seconds_left gauge\n"),
            "{text}"
        );
        let left = value(
            &text,
            "tether_endpoint_drain_seconds_left{load_balancer=\"*\",pool=\"p\",endpoint=\"p-1\"}",
        )
        .expect(&text);
        assert!((59.0..=60.0).contains(&left), "{left}");
        // No affinity, no sessions to drain; an enabled endpoint is not draining.
        let drains: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tether_endpoint_drain_seconds_left{"))
            .collect();
        assert_eq!(drains.len(), 1, "{drains:?}");
        assert_eq!(
            value(
                &text,
                "tether_endpoint_enabled{pool=\"p\",endpoint=\"p-1\"}"
            ),
            Some(0.0)
        );

        // Once the drain is over the series is gone.
        crate::changes::test_door::set_endpoint_enabled(&state, p1, true, state.clock.now_ms());
        crate::changes::test_door::set_endpoint_enabled(
            &state,
            p1,
            false,
            state.clock.now_ms() - 61_000,
        );
        let text = Metrics::default().render(&state);
        assert!(
            !text.contains("tether_endpoint_drain_seconds_left"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let state = state();
        let m = Metrics::default();
        m.record_request("a\"b\\c\nd", None, 200, Decision::None);
        let text = m.render(&state);
        assert!(text.contains("load_balancer=\"a\\\"b\\\\c\\nd\""), "{text}");
    }

    #[test]
    fn the_process_wide_functions_record_and_render() {
        let state = state();
        // Other tests do not use the process-wide counters; this one uses a
        // load balancer name of its own anyway.
        crate::metrics::record_request("global.test", at(0, 0), 201, Decision::New);
        let text = render(&state);
        assert_eq!(
            value(&text, "tether_requests_total{load_balancer=\"global.test\",pool=\"p\",endpoint=\"p-0\",status=\"201\"}"),
            Some(1.0),
            "{text}"
        );
    }
}
