//! The live state every worker thread shares: each endpoint's health, enabled
//! flag, weight and load, each pool's hash ring, and the table of load
//! balancers by host. Built once from the validated [`Config`]; the monitor
//! writes health, the proxy writes load, and run-time changes (enabled,
//! weight, load balancer settings) arrive only through
//! [`crate::changes::Changes`]. Reads on the request path are atomic loads,
//! never locks. Nothing here knows of the state file.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::affinity::cookie::CookieKeys;
use crate::affinity::cookie_header::resolve;
use crate::affinity::key::HeaderKeySpec;
use crate::affinity::table::SessionTable;
use crate::balance::hash::stable_hash_parts;
use crate::balance::outlier::{Outcome, Policy};
use crate::balance::ring::HashRing;
use crate::clock::Clock;
use crate::config::{self, Config, SessionAffinity};
use crate::rules::Rules;

mod endpoint;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod live;
pub mod origin_tls;
pub mod upgraded;
pub use endpoint::{EndpointState, LastCheck};

/// One pool: its endpoints in file order and their hash ring.
#[derive(Debug)]
pub struct PoolState {
    pub conf: config::Pool,
    enabled: AtomicBool,
    pub endpoints: Vec<EndpointState>,
    /// Up (enabled and healthy) endpoints, kept exact by their transitions.
    up: Arc<AtomicUsize>,
    ring: ArcSwap<HashRing>,
    /// Cumulative configured weights, for weighted random picks in O(log n).
    cumulative: ArcSwap<Vec<f64>>,
    in_flight: AtomicU64,
    /// The seed of this pool's load-shedding hash draws.
    pub shed_seed: u64,
    /// Passive health (`outlier_detection`), when configured.
    pub outlier: Option<Policy>,
    /// `slow_start` in ms (0: none).
    pub slow_start_ms: u64,
}

impl PoolState {
    fn new(conf: &config::Pool) -> Self {
        let up = Arc::new(AtomicUsize::new(0));
        let endpoints: Vec<EndpointState> = conf
            .endpoints
            .iter()
            .map(|e| EndpointState::new(&conf.name, e, Arc::clone(&up)))
            .collect();
        let ring = ArcSwap::from_pointee(build_ring(&conf.name, &endpoints));
        let cumulative = ArcSwap::from_pointee(cumulative_weights(&endpoints));
        PoolState {
            enabled: AtomicBool::new(conf.enabled),
            endpoints,
            up,
            ring,
            cumulative,
            in_flight: AtomicU64::new(0),
            shed_seed: crate::balance::shed::pool_seed(&conf.name),
            slow_start_ms: millis(conf.slow_start),
            outlier: conf.outlier_detection.map(|o| Policy {
                consecutive_5xx: o.consecutive_5xx,
                consecutive_gateway_failure: o.consecutive_gateway_failure,
                base_ejection_ms: millis(o.base_ejection_time),
                max_ejection_percent: o.max_ejection_percent,
            }),
            conf: conf.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.conf.name
    }
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Its configuration as in force now: its own `enabled` and its
    /// endpoints' `enabled` and `weight` as changed at run time (what the
    /// admin API's objects and Cloudflare's API show of a pool).
    pub fn conf_in_force(&self) -> config::Pool {
        let mut conf = self.conf.clone();
        conf.enabled = self.enabled();
        for (e, live) in conf.endpoints.iter_mut().zip(&self.endpoints) {
            e.enabled = live.enabled();
            e.weight = live.weight();
        }
        conf
    }
    pub fn ring(&self) -> arc_swap::Guard<Arc<HashRing>> {
        self.ring.load()
    }

    /// Changes an endpoint's weight and rebuilds the ring (new sessions only;
    /// pinned sessions keep their endpoint).
    fn set_weight(&self, endpoint: usize, weight: f64) {
        self.endpoints[endpoint].set_weight(weight);
        self.ring
            .store(Arc::new(build_ring(self.name(), &self.endpoints)));
        self.cumulative
            .store(Arc::new(cumulative_weights(&self.endpoints)));
    }

    /// Records the outcome of an answer from endpoint `endpoint` (passive
    /// health). Returns when the ejection it starts ends (monotonic ms).
    pub fn record_outcome(&self, endpoint: usize, outcome: Outcome, now_ms: u64) -> Option<u64> {
        let policy = self.outlier.as_ref()?;
        let e = self.endpoints.get(endpoint)?;
        let others_ejected = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|&(i, x)| i != endpoint && x.ejected(now_ms))
            .count();
        let may_eject = others_ejected < policy.max_ejected(self.endpoints.len());
        e.record_outcome(policy, outcome, now_ms, may_eject)
    }

    pub fn cumulative_weights(&self) -> arc_swap::Guard<Arc<Vec<f64>>> {
        self.cumulative.load()
    }

    /// Enabled endpoints whose monitor calls them healthy (O(1)).
    pub fn up_count(&self) -> usize {
        self.up.load(Relaxed)
    }

    /// Mean of the endpoints' last probe round trips, for `dynamic_latency`.
    pub fn latency(&self) -> Option<Duration> {
        let (sum, n) = self
            .endpoints
            .iter()
            .filter_map(|e| e.rtt())
            .fold((Duration::ZERO, 0u32), |(sum, n), rtt| (sum + rtt, n + 1));
        (n > 0).then(|| sum / n)
    }
}

fn cumulative_weights(endpoints: &[EndpointState]) -> Vec<f64> {
    endpoints
        .iter()
        .scan(0.0, |sum, e| {
            *sum += e.weight().max(0.0);
            Some(*sum)
        })
        .collect()
}

fn build_ring(pool: &str, endpoints: &[EndpointState]) -> HashRing {
    let weights: Vec<(&str, f64)> = endpoints.iter().map(|e| (e.name(), e.weight())).collect();
    HashRing::new(pool, &weights)
}

/// The id a `__cflb` cookie carries for an endpoint: the stable hash of its
/// pool and endpoint names (never its address).
pub fn endpoint_id(pool: &str, endpoint: &str) -> u64 {
    stable_hash_parts(&[b"endpoint", pool.as_bytes(), endpoint.as_bytes()])
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The id a `__cflb` cookie carries for its load balancer.
pub fn lb_id(name: &str) -> u64 {
    stable_hash_parts(&[b"load_balancer", name.as_bytes()])
}

/// A load balancer with its pool names resolved to indexes into [`State::pools`]
/// and its affinity settings made ready for the request path.
#[derive(Debug)]
pub struct LbState {
    pub conf: config::LoadBalancer,
    pub id: u64,
    pub default_pools: Vec<usize>,
    pub fallback_pool: Option<usize>,
    /// `header` affinity: how the session key is built.
    pub header_key: Option<HeaderKeySpec>,
    /// `cookie` / `ip_cookie`: the `Set-Cookie` line after the value (its
    /// attributes, [`crate::affinity::cookie_header::CookieAttributes::tail`]).
    pub set_cookie_tail: Box<str>,
    pub drain_ms: u64,
    pub ttl_ms: u64,
    /// Its rules, compiled (docs/rules.md).
    pub rules: Rules,
    /// Its request counters (`tether_requests_total`, ...), resolved by name
    /// once, here.
    pub counters: Arc<crate::metrics::LbCounters>,
    /// The load balancer as a set of matching rules' overrides make it (a
    /// bit per rule, by file index): each rule alone built with the state,
    /// combinations of non-terminating rules on first use (at most
    /// [`MAX_VARIANTS`] kept).
    variants: ArcSwap<HashMap<u64, Arc<LbState>>>,
}

/// Most combinations of rules' overrides one load balancer keeps built.
pub const MAX_VARIANTS: usize = 256;

impl LbState {
    pub fn is_default_pool(&self, pool: usize) -> bool {
        self.default_pools.contains(&pool)
    }
    /// Serving from the fallback pool (which is not also a default pool).
    pub fn is_fallback_only(&self, pool: usize) -> bool {
        self.fallback_pool == Some(pool) && !self.is_default_pool(pool)
    }
}

/// Host → load balancer, swapped whole when a load balancer changes.
#[derive(Debug, Default)]
pub struct LbTable {
    by_host: HashMap<String, Arc<LbState>>,
    catch_all: Option<Arc<LbState>>,
}

/// A run-time change named something the configuration does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    LoadBalancer(String),
    Pool(String),
    Endpoint { pool: String, endpoint: String },
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFound::LoadBalancer(name) => write!(f, "no load balancer named {name:?}"),
            NotFound::Pool(name) => write!(f, "no pool named {name:?}"),
            NotFound::Endpoint { pool, endpoint } => {
                write!(f, "pool {pool:?} has no endpoint named {endpoint:?}")
            }
        }
    }
}

impl LbTable {
    /// `host` must already be lower-case and without a port.
    pub fn get(&self, host: &str) -> Option<&Arc<LbState>> {
        self.by_host.get(host).or(self.catch_all.as_ref())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<LbState>> {
        self.by_host.values().chain(self.catch_all.as_ref())
    }

    /// By its exact name (`"*"` for the catch-all), not by request host.
    pub fn named(&self, name: &str) -> Option<&Arc<LbState>> {
        if name == "*" {
            self.catch_all.as_ref()
        } else {
            self.by_host.get(name)
        }
    }
}

/// Everything the workers share.
pub struct State {
    pub pools: Vec<PoolState>,
    pool_index: HashMap<String, usize>,
    /// Endpoint id (as in a cookie) → where it is.
    endpoint_ids: HashMap<u64, Pick>,
    lbs: ArcSwap<LbTable>,
    pub upstream_timeouts: config::UpstreamTimeouts,
    pub decision_header: bool,
    /// `tether.dns_refresh`: how often host-name endpoints are re-resolved.
    pub dns_refresh: std::time::Duration,
    /// `tether.upgraded_connections`: when open WebSockets of an unfit
    /// endpoint close ([`upgraded`]).
    pub upgraded_connections: config::UpgradedConnections,
    pub clock: Clock,
    pub keys: CookieKeys,
    /// `header` and `source_ip` sessions of every load balancer; shared with
    /// the state a reload replaces this one with.
    pub sessions: Arc<SessionTable>,
    /// The monitors pools name, by name.
    pub monitors: BTreeMap<String, config::Monitor>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("pools", &self.pools)
            .field("lbs", &self.lbs)
            .finish_non_exhaustive()
    }
}

impl State {
    pub fn new(config: &Config, keys: CookieKeys) -> Self {
        let sessions = Arc::new(SessionTable::new(config.max_sessions));
        Self::with(config, keys, Clock::new(), sessions)
    }

    /// A state on an existing clock and session table (a reload's successor).
    pub fn with(
        config: &Config,
        keys: CookieKeys,
        clock: Clock,
        sessions: Arc<SessionTable>,
    ) -> Self {
        let pools: Vec<PoolState> = config.pools.values().map(PoolState::new).collect();
        let pool_index = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name().to_string(), i))
            .collect();
        let mut endpoint_ids = HashMap::new();
        for (pool, p) in pools.iter().enumerate() {
            for (endpoint, e) in p.endpoints.iter().enumerate() {
                if endpoint_ids.insert(e.id, Pick { pool, endpoint }).is_some() {
                    // 64-bit ids of distinct names: not expected in practice.
                    log::error!(
                        "pool {} endpoint {}: its cookie id collides with another endpoint's; sessions may mix",
                        p.name(),
                        e.name()
                    );
                }
            }
        }
        let state = State {
            pools,
            pool_index,
            endpoint_ids,
            lbs: ArcSwap::from_pointee(LbTable::default()),
            upstream_timeouts: config.upstream_timeouts,
            decision_header: config.decision_header,
            dns_refresh: config.dns_refresh,
            upgraded_connections: config.upgraded_connections,
            clock,
            keys,
            sessions,
            monitors: config.monitors.clone(),
        };
        let table = state.lb_table(config.load_balancers.values());
        state.lbs.store(Arc::new(table));
        state
    }

    fn lb_table<'a>(&self, lbs: impl Iterator<Item = &'a config::LoadBalancer>) -> LbTable {
        let mut table = LbTable::default();
        for lb in lbs {
            let resolved = Arc::new(self.resolve(lb));
            if lb.name == "*" {
                table.catch_all = Some(resolved);
            } else {
                table.by_host.insert(lb.name.clone(), resolved);
            }
        }
        table
    }

    /// The load balancer a request routes by when rules with `overrides`
    /// (a bit per rule, by file index) matched it; `lb` itself for none.
    pub fn ruled(&self, lb: &Arc<LbState>, overrides: u64) -> Arc<LbState> {
        if overrides == 0 {
            return Arc::clone(lb);
        }
        if let Some(v) = lb.variants.load().get(&overrides) {
            return Arc::clone(v);
        }
        let variant = Arc::new(self.variant(lb, overrides));
        lb.variants.rcu(|m| {
            let mut m = HashMap::clone(m);
            if m.len() < MAX_VARIANTS {
                m.insert(overrides, Arc::clone(&variant));
            }
            m
        });
        variant
    }

    /// `lb` with the overrides of the rules in `overrides` laid over it, in
    /// the order the rules run. Validated with the file, so it cannot fail;
    /// if it did, the load balancer's own settings serve (logged).
    fn variant(&self, lb: &LbState, overrides: u64) -> LbState {
        let maps: Vec<&serde_yaml::Mapping> = lb
            .rules
            .list
            .iter()
            .filter(|r| r.index < 64 && overrides & (1u64 << r.index) != 0)
            .filter_map(|r| lb.conf.rules.get(r.index).map(|c| &c.overrides))
            .collect();
        match config::apply_overrides(&lb.conf, &maps) {
            Ok(conf) => self.resolve(&conf),
            Err(e) => {
                log::error!(
                    "load balancer {}: rules' overrides do not apply ({e}); its own settings serve",
                    lb.conf.name
                );
                let mut conf = lb.conf.clone();
                conf.rules.clear();
                self.resolve(&conf)
            }
        }
    }

    /// Validation guarantees every pool name exists; an unknown one is skipped.
    fn resolve(&self, lb: &config::LoadBalancer) -> LbState {
        let mut state = self.resolve_one(lb);
        let singles: HashMap<u64, Arc<LbState>> = state
            .rules
            .list
            .iter()
            .filter(|r| r.overrides && r.index < 64)
            .map(|r| {
                let bit = 1u64 << r.index;
                (bit, Arc::new(self.variant(&state, bit)))
            })
            .collect();
        state.variants = ArcSwap::from_pointee(singles);
        state
    }

    fn resolve_one(&self, lb: &config::LoadBalancer) -> LbState {
        let attrs = &lb.session_affinity_attributes;
        LbState {
            set_cookie_tail: resolve(
                attrs.samesite,
                attrs.secure,
                lb.always_use_https,
                lb.session_affinity_ttl.as_secs(),
            )
            .tail(),
            rules: Rules::compile(&lb.name, &lb.rules),
            counters: crate::metrics::counters_for(&lb.name),
            variants: ArcSwap::from_pointee(HashMap::new()),
            id: lb_id(&lb.name),
            header_key: (lb.session_affinity == SessionAffinity::Header)
                .then(|| HeaderKeySpec::new(&attrs.headers, attrs.require_all_headers)),
            drain_ms: millis(attrs.drain_duration),
            ttl_ms: millis(lb.session_affinity_ttl),
            default_pools: lb
                .default_pools
                .iter()
                .filter_map(|p| self.pool_index.get(p).copied())
                .collect(),
            fallback_pool: lb
                .fallback_pool
                .as_ref()
                .and_then(|p| self.pool_index.get(p).copied()),
            conf: lb.clone(),
        }
    }

    pub fn load_balancers(&self) -> arc_swap::Guard<Arc<LbTable>> {
        self.lbs.load()
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pool_index.get(name).copied()
    }

    /// The pool index of `pool` and the endpoint index of `endpoint` in it.
    pub fn find_endpoint(&self, pool: &str, endpoint: &str) -> Result<Pick, NotFound> {
        let p = self
            .pool_index(pool)
            .ok_or_else(|| NotFound::Pool(pool.to_string()))?;
        let e = self.pools[p]
            .endpoints
            .iter()
            .position(|e| e.name() == endpoint)
            .ok_or_else(|| NotFound::Endpoint {
                pool: pool.to_string(),
                endpoint: endpoint.to_string(),
            })?;
        Ok(Pick {
            pool: p,
            endpoint: e,
        })
    }

    /// Enables or disables an endpoint at run time; disabling starts its drain.
    /// Only [`crate::changes`] calls it (clippy.toml `disallowed-methods`).
    #[allow(clippy::disallowed_methods)] // the state's own: delegates to the endpoint
    pub(crate) fn set_endpoint_enabled(&self, at: Pick, enabled: bool, now_ms: u64) {
        self.endpoint(at).set_enabled(enabled, now_ms);
    }

    /// Changes an endpoint's weight (0.0 ..= 1.0, validated by the caller).
    /// Only [`crate::changes`] calls it (clippy.toml `disallowed-methods`).
    pub(crate) fn set_endpoint_weight(&self, at: Pick, weight: f64) {
        self.pools[at.pool].set_weight(at.endpoint, weight);
    }

    /// Replaces one load balancer's settings (validated by the caller as the
    /// file is); requests already routed keep the settings they started with.
    /// Callers serialise replacements ([`crate::changes::Changes`] does).
    /// Only [`crate::changes`] calls it (clippy.toml `disallowed-methods`).
    pub(crate) fn replace_load_balancer(&self, lb: config::LoadBalancer) -> Result<(), NotFound> {
        let current = self.load_balancers();
        if current.named(&lb.name).is_none() {
            return Err(NotFound::LoadBalancer(lb.name));
        }
        let mut confs: Vec<config::LoadBalancer> = current.all().map(|l| l.conf.clone()).collect();
        for conf in &mut confs {
            if conf.name == lb.name {
                *conf = lb.clone();
            }
        }
        self.lbs.store(Arc::new(self.lb_table(confs.iter())));
        Ok(())
    }

    /// The pick of endpoint `endpoint` of pool `pool`, when both exist.
    pub fn pick(&self, pool: usize, endpoint: usize) -> Option<Pick> {
        let exists = self.pools.get(pool)?.endpoints.get(endpoint).is_some();
        exists.then_some(Pick { pool, endpoint })
    }

    pub fn endpoint_by_id(&self, id: u64) -> Option<Pick> {
        self.endpoint_ids.get(&id).copied()
    }

    pub fn endpoint(&self, at: Pick) -> &EndpointState {
        &self.pools[at.pool].endpoints[at.endpoint]
    }

    /// Counts a request against the endpoint and its pool until the guard drops.
    pub fn begin_request(self: &Arc<Self>, at: Pick) -> InFlight {
        self.pools[at.pool].in_flight.fetch_add(1, Relaxed);
        self.endpoint(at).in_flight.fetch_add(1, Relaxed);
        InFlight {
            state: Arc::clone(self),
            at,
        }
    }
}

/// Where a request goes: indexes of a pool in [`State::pools`] and of an
/// endpoint in that pool. Only the state makes one ([`State::pick`],
/// [`State::find_endpoint`], [`State::endpoint_by_id`]), after checking that
/// both exist, so indexing with a `Pick` cannot go out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pick {
    pool: usize,
    endpoint: usize,
}

impl Pick {
    /// The pool's index in [`State::pools`].
    pub fn pool(self) -> usize {
        self.pool
    }
    /// The endpoint's index in its pool.
    pub fn endpoint(self) -> usize {
        self.endpoint
    }
    /// Unit tests only: a pick of indexes the test knows exist.
    #[cfg(test)]
    pub(crate) fn unchecked(pool: usize, endpoint: usize) -> Pick {
        Pick { pool, endpoint }
    }
}

/// A request in flight to an endpoint; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight {
    state: Arc<State>,
    at: Pick,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.pools[self.at.pool]
            .in_flight
            .fetch_sub(1, Relaxed);
        self.state.endpoint(self.at).in_flight.fetch_sub(1, Relaxed);
    }
}

// The state's own tests may use its setters (clippy.toml `disallowed-methods`).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::OriginSteering;
    use crate::state::fixtures::pool;

    #[test]
    fn up_count_follows_every_transition() {
        let p = PoolState::new(&pool("p", 3, OriginSteering::Random));
        assert_eq!(p.up_count(), 3);
        p.endpoints[0].set_healthy(false);
        p.endpoints[0].set_healthy(false);
        assert_eq!(p.up_count(), 2, "a repeated transition counts once");
        p.endpoints[0].set_enabled(false, 5);
        p.endpoints[0].set_healthy(true);
        assert_eq!(p.up_count(), 2, "disabled and healthy is not up");
        p.endpoints[0].set_enabled(true, 6);
        p.endpoints[1].restore_disabled(1);
        assert_eq!(p.up_count(), 2);
        assert_eq!(p.up_count(), p.endpoints.iter().filter(|e| e.up()).count());
    }

    #[test]
    fn up_count_stays_exact_under_concurrent_monitor_and_admin() {
        let p = Arc::new(PoolState::new(&pool("p", 4, OriginSteering::Random)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let e = &p.endpoints[(i % 4) as usize];
                        if t % 2 == 0 {
                            e.set_healthy(i % 3 != 0);
                        } else {
                            e.set_enabled(i % 5 != 0, i + 1);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(p.up_count(), p.endpoints.iter().filter(|e| e.up()).count());
    }

    #[test]
    fn cumulative_weights_follow_weight_changes() {
        let p = PoolState::new(&pool("p", 3, OriginSteering::Random));
        assert_eq!(**p.cumulative_weights(), vec![1.0, 2.0, 3.0]);
        p.set_weight(1, 0.0);
        assert_eq!(**p.cumulative_weights(), vec![1.0, 1.0, 2.0]);
    }

    #[test]
    fn rules_overrides_make_variants_built_once() {
        let mut cfg = crate::state::fixtures::config(
            vec![
                pool("a", 1, OriginSteering::Random),
                pool("b", 1, OriginSteering::Random),
                pool("c", 1, OriginSteering::Random),
            ],
            &["a"],
            None,
        );
        let lb = cfg.load_balancers.get_mut("*").unwrap();
        for (name, yaml) in [
            ("to-b", "{ default_pools: [b] }"),
            (
                "random",
                "{ steering_policy: random, default_pools: [c, b] }",
            ),
        ] {
            lb.rules.push(config::Rule {
                name: name.into(),
                condition: String::new(),
                priority: 0,
                disabled: false,
                terminates: false,
                overrides: serde_yaml::from_str(yaml).unwrap(),
                fixed_response: None,
            });
        }
        let state = State::new(&cfg, CookieKeys::random());
        let table = state.load_balancers();
        let base = table.get("x").unwrap();
        assert!(Arc::ptr_eq(&state.ruled(base, 0), base));
        let one = state.ruled(base, 0b01);
        assert_eq!(one.default_pools, [state.pool_index("b").unwrap()]);
        assert_eq!(one.id, base.id, "a rule's sessions are the load balancer's");
        assert!(one.rules.is_empty());
        // Both: the later rule's keys win; built on first use, then reused.
        let both = state.ruled(base, 0b11);
        assert_eq!(both.conf.default_pools, ["c", "b"]);
        assert_eq!(both.conf.steering_policy, config::SteeringPolicy::Random);
        assert!(Arc::ptr_eq(&both, &state.ruled(base, 0b11)));
        assert!(Arc::ptr_eq(&one, &state.ruled(base, 0b01)));
    }

    #[test]
    fn an_ejection_ejects_within_the_pool_limit_and_its_end_starts_slow_start() {
        let mut p = pool("p", 2, OriginSteering::Random);
        p.outlier_detection = Some(config::OutlierDetection {
            consecutive_5xx: 2,
            consecutive_gateway_failure: 0,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_percent: 50.0,
        });
        let cfg = crate::state::fixtures::config(vec![p], &["p"], None);
        let state = State::new(&cfg, CookieKeys::random());
        let pool = &state.pools[0];
        let t = 5_000;
        assert_eq!(pool.record_outcome(0, Outcome::ServerError, t), None);
        assert_eq!(
            pool.record_outcome(0, Outcome::ServerError, t),
            Some(t + 10_000)
        );
        let e0 = &pool.endpoints[0];
        assert!(e0.ejected(t) && !e0.ejected(t + 10_000));
        assert_eq!(e0.ejections_total(), 1);
        // 50 % of two endpoints: the other one may not be ejected now.
        for _ in 0..5 {
            assert_eq!(pool.record_outcome(1, Outcome::ServerError, t + 1), None);
        }
        assert!(!pool.endpoints[1].ejected(t + 1));
        // The ejection's end is when it became usable again (slow start).
        assert_eq!(e0.usable_since(t + 1), 0, "still ejected");
        assert_eq!(e0.usable_since(t + 20_000), t + 10_000);
    }
}
