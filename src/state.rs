//! The live state every worker thread shares: each endpoint's health, enabled
//! flag, weight and load, each pool's hash ring, and the table of load
//! balancers by host. Built once from the validated [`Config`]; the monitor
//! writes health, the proxy writes load, the admin API (later) writes enabled
//! and weight. Reads on the request path are atomic loads, never locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::balance::ring::HashRing;
use crate::config::{self, Config};

/// One endpoint of one pool, as the request path sees it.
#[derive(Debug)]
pub struct EndpointState {
    pub conf: config::Endpoint,
    enabled: AtomicBool,
    /// `f64::to_bits` of the weight (0.0 ..= 1.0).
    weight: AtomicU64,
    healthy: AtomicBool,
    in_flight: AtomicU64,
    connections: AtomicU64,
    /// Round-trip time of the last successful probe in µs; 0 = none yet.
    rtt_micros: AtomicU64,
}

impl EndpointState {
    fn new(conf: &config::Endpoint) -> Self {
        EndpointState {
            enabled: AtomicBool::new(conf.enabled),
            weight: AtomicU64::new(conf.weight.to_bits()),
            healthy: AtomicBool::new(true),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            conf: conf.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.conf.name
    }
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    pub fn healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }
    pub fn weight(&self) -> f64 {
        f64::from_bits(self.weight.load(Relaxed))
    }
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }
    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }
    pub fn rtt(&self) -> Option<Duration> {
        match self.rtt_micros.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Counts towards the pool's health threshold.
    pub fn up(&self) -> bool {
        self.enabled() && self.healthy()
    }
    /// May take new traffic in a healthy pool.
    pub fn usable(&self) -> bool {
        self.up() && self.weight() > 0.0
    }
    /// May take new traffic in the fallback pool, whose health is ignored.
    pub fn usable_as_fallback(&self) -> bool {
        self.enabled() && self.weight() > 0.0
    }

    #[cfg(test)] // the admin API (next issues) uses it too
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Relaxed);
    }
    /// Returns the previous value.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Relaxed)
    }
    pub fn set_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.rtt_micros.store(us, Relaxed);
    }
    pub fn add_connection(&self) {
        self.connections.fetch_add(1, Relaxed);
    }
    pub fn remove_connection(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }
}

/// One pool: its endpoints in file order and their hash ring.
#[derive(Debug)]
pub struct PoolState {
    pub conf: config::Pool,
    enabled: AtomicBool,
    pub endpoints: Vec<EndpointState>,
    ring: ArcSwap<HashRing>,
    in_flight: AtomicU64,
}

impl PoolState {
    fn new(conf: &config::Pool) -> Self {
        let endpoints: Vec<EndpointState> = conf.endpoints.iter().map(EndpointState::new).collect();
        let ring = ArcSwap::from_pointee(build_ring(&conf.name, &endpoints));
        PoolState {
            enabled: AtomicBool::new(conf.enabled),
            endpoints,
            ring,
            in_flight: AtomicU64::new(0),
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
    pub fn ring(&self) -> arc_swap::Guard<Arc<HashRing>> {
        self.ring.load()
    }

    /// Enabled endpoints whose monitor calls them healthy.
    pub fn up_count(&self) -> usize {
        self.endpoints.iter().filter(|e| e.up()).count()
    }

    /// Mean of the endpoints' last probe round trips, for `dynamic_latency`.
    pub fn latency(&self) -> Option<Duration> {
        let rtts: Vec<Duration> = self.endpoints.iter().filter_map(|e| e.rtt()).collect();
        let n = u32::try_from(rtts.len()).ok().filter(|n| *n > 0)?;
        Some(rtts.iter().sum::<Duration>() / n)
    }
}

fn build_ring(pool: &str, endpoints: &[EndpointState]) -> HashRing {
    let weights: Vec<(&str, f64)> = endpoints.iter().map(|e| (e.name(), e.weight())).collect();
    HashRing::new(pool, &weights)
}

/// A load balancer with its pool names resolved to indexes into [`State::pools`].
#[derive(Debug)]
pub struct LbState {
    pub conf: config::LoadBalancer,
    pub default_pools: Vec<usize>,
    pub fallback_pool: Option<usize>,
}

/// Host → load balancer, swapped whole when a load balancer changes.
#[derive(Debug, Default)]
pub struct LbTable {
    by_host: HashMap<String, Arc<LbState>>,
    catch_all: Option<Arc<LbState>>,
}

impl LbTable {
    /// `host` must already be lower-case and without a port.
    pub fn get(&self, host: &str) -> Option<&Arc<LbState>> {
        self.by_host.get(host).or(self.catch_all.as_ref())
    }
}

/// Everything the workers share.
#[derive(Debug)]
pub struct State {
    pub pools: Vec<PoolState>,
    pool_index: HashMap<String, usize>,
    lbs: ArcSwap<LbTable>,
    pub upstream_timeouts: config::UpstreamTimeouts,
}

impl State {
    pub fn new(config: &Config) -> Self {
        let pools: Vec<PoolState> = config.pools.values().map(PoolState::new).collect();
        let pool_index = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name().to_string(), i))
            .collect();
        let state = State {
            pools,
            pool_index,
            lbs: ArcSwap::from_pointee(LbTable::default()),
            upstream_timeouts: config.upstream_timeouts,
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

    /// Validation guarantees every pool name exists; an unknown one is skipped.
    fn resolve(&self, lb: &config::LoadBalancer) -> LbState {
        LbState {
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

    #[cfg(test)]
    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pool_index.get(name).copied()
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
/// endpoint in that pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub pool: usize,
    pub endpoint: usize,
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
