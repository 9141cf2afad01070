//! One endpoint as every worker thread sees it: its configuration, its
//! enabled and healthy flags (one atomic, so the pool's count of up
//! endpoints stays exact), weight, load, drain start, last probe and
//! round-trip time. Writes come from the monitor (health), the proxy (load)
//! and the owner of changes (enabled, weight); reads are atomic loads.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::endpoint_id;
use crate::balance::outlier::{Outcome, Policy, Tracker};
use crate::config;

/// One endpoint of one pool, as the request path sees it.
#[derive(Debug)]
pub struct EndpointState {
    pub conf: config::Endpoint,
    /// Stable id from the pool and endpoint names: what a `__cflb` cookie carries.
    pub id: u64,
    /// [`ENABLED`] and [`HEALTHY`] in one atomic, so the pool's count of up
    /// endpoints stays exact when the monitor and the admin API act at once.
    flags: AtomicU8,
    /// The pool's count of up (enabled and healthy) endpoints.
    pool_up: Arc<AtomicUsize>,
    /// Monotonic ms at which it was disabled (drain starts there); 0 while enabled.
    disabled_since: AtomicU64,
    /// `f64::to_bits` of the weight (0.0 ..= 1.0).
    weight: AtomicU64,
    pub(super) in_flight: AtomicU64,
    connections: AtomicU64,
    /// Round-trip time of the last successful probe in µs; 0 = none yet.
    rtt_micros: AtomicU64,
    /// The last monitor probe: when (unix ms) and, if it failed, why.
    last_check: parking_lot::Mutex<Option<LastCheck>>,
    /// Passive health: streaks and ejections (written after each answer).
    outlier: parking_lot::Mutex<Tracker>,
    /// Monotonic ms the current ejection ends (0: never ejected); read on
    /// the request path.
    ejected_until: AtomicU64,
    ejections_total: AtomicU64,
    /// Slow start: monotonic ms it last became usable (recovered, enabled,
    /// added); 0: usable since before this process started.
    usable_since: AtomicU64,
    /// Where requests and probes go now: `conf.socket_addr` at start, then
    /// what `tether.dns_refresh` last resolved a host-name address to.
    addr: arc_swap::ArcSwap<std::net::SocketAddr>,
}

/// The last monitor probe of an endpoint, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    pub unix_ms: u64,
    /// `None` when the probe passed.
    pub failure: Option<String>,
}

const ENABLED: u8 = 1;
const HEALTHY: u8 = 2;
const UP: u8 = ENABLED | HEALTHY;

impl EndpointState {
    pub(super) fn new(pool: &str, conf: &config::Endpoint, pool_up: Arc<AtomicUsize>) -> Self {
        let flags = HEALTHY | if conf.enabled { ENABLED } else { 0 };
        if flags == UP {
            pool_up.fetch_add(1, Relaxed);
        }
        EndpointState {
            id: endpoint_id(pool, &conf.name),
            flags: AtomicU8::new(flags),
            pool_up,
            // Disabled in the file: its drain starts when this process starts.
            disabled_since: AtomicU64::new(if conf.enabled {
                0
            } else {
                crate::clock::MONOTONIC_BASE
            }),
            weight: AtomicU64::new(conf.weight.to_bits()),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            last_check: parking_lot::Mutex::new(None),
            outlier: parking_lot::Mutex::new(Tracker::default()),
            ejected_until: AtomicU64::new(0),
            ejections_total: AtomicU64::new(0),
            usable_since: AtomicU64::new(0),
            addr: arc_swap::ArcSwap::from_pointee(conf.socket_addr),
            conf: conf.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.conf.name
    }
    /// The socket address requests and probes go to now (a lock-free load).
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        **self.addr.load()
    }
    /// A host-name address re-resolved elsewhere (`src/services/dns.rs`).
    pub fn set_socket_addr(&self, addr: std::net::SocketAddr) {
        self.addr.store(std::sync::Arc::new(addr));
    }
    pub fn enabled(&self) -> bool {
        self.flags.load(Relaxed) & ENABLED != 0
    }
    pub fn healthy(&self) -> bool {
        self.flags.load(Relaxed) & HEALTHY != 0
    }

    /// Sets or clears `bit`; keeps the pool's up count exact. Returns the old flags.
    fn set_flag(&self, bit: u8, on: bool) -> u8 {
        let change = |f: u8| if on { f | bit } else { f & !bit };
        let old = self
            .flags
            .fetch_update(Relaxed, Relaxed, |f| Some(change(f)))
            .unwrap_or_else(|f| f);
        match (old == UP, change(old) == UP) {
            (false, true) => {
                self.pool_up.fetch_add(1, Relaxed);
            }
            (true, false) => {
                self.pool_up.fetch_sub(1, Relaxed);
            }
            _ => {}
        }
        old
    }
    /// When it was disabled (monotonic ms), `None` while enabled.
    pub fn disabled_since(&self) -> Option<u64> {
        match self.disabled_since.load(Relaxed) {
            0 => None,
            since => Some(since),
        }
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
        self.flags.load(Relaxed) == UP
    }
    /// May take new traffic in a healthy pool.
    pub fn usable(&self) -> bool {
        self.up() && self.weight() > 0.0
    }
    /// May take new traffic in the fallback pool, whose health is ignored.
    /// Ejected by passive health at `now_ms` (monotonic).
    pub fn ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until.load(Relaxed)
    }
    /// When the current or last ejection ends (monotonic ms); `None`: never ejected.
    pub fn ejected_until_ms(&self) -> Option<u64> {
        match self.ejected_until.load(Relaxed) {
            0 => None,
            until => Some(until),
        }
    }
    /// It becomes usable now (recovered, enabled, added): its slow start
    /// begins.
    pub fn mark_usable_since(&self, now_ms: u64) {
        self.usable_since.store(now_ms.max(1), Relaxed);
    }
    /// What [`Self::mark_usable_since`] last recorded (0: nothing), for a
    /// reload's successor to carry over.
    pub fn marked_usable_since(&self) -> u64 {
        self.usable_since.load(Relaxed)
    }
    /// When it last became usable (monotonic ms; 0: before this process):
    /// the later of [`Self::mark_usable_since`] and the end of its last
    /// ejection, once over.
    pub fn usable_since(&self, now_ms: u64) -> u64 {
        let since = self.usable_since.load(Relaxed);
        let ejected_until = self.ejected_until.load(Relaxed);
        if ejected_until <= now_ms {
            since.max(ejected_until)
        } else {
            since
        }
    }
    /// Ejections since start.
    pub fn ejections_total(&self) -> u64 {
        self.ejections_total.load(Relaxed)
    }
    /// Records one answer's outcome; `may_eject`: the pool allows one more
    /// ejected endpoint. Returns when an ejection this starts ends.
    pub(super) fn record_outcome(
        &self,
        policy: &Policy,
        outcome: Outcome,
        now_ms: u64,
        may_eject: bool,
    ) -> Option<u64> {
        let until = self
            .outlier
            .lock()
            .record(policy, outcome, now_ms, may_eject)?;
        self.ejected_until.store(until, Relaxed);
        self.ejections_total.fetch_add(1, Relaxed);
        Some(until)
    }

    pub fn usable_as_fallback(&self) -> bool {
        self.enabled() && self.weight() > 0.0
    }

    /// Disabling starts the drain clock at `now_ms`; enabling stops it.
    /// Only [`crate::changes`] calls it (clippy.toml `disallowed-methods`).
    pub(crate) fn set_enabled(&self, enabled: bool, now_ms: u64) {
        let was = self.set_flag(ENABLED, enabled) & ENABLED != 0;
        if enabled {
            self.disabled_since.store(0, Relaxed);
            if !was {
                self.mark_usable_since(now_ms);
            }
        } else if was {
            self.disabled_since.store(now_ms.max(1), Relaxed);
        }
    }
    /// Returns the previous value.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.set_flag(HEALTHY, healthy) & HEALTHY != 0
    }
    /// Restores a disable that happened at `since` (monotonic ms), e.g. from
    /// the state file, so its drain ends when it would have. Only
    /// [`crate::changes`] and a reload's successor call it (clippy.toml
    /// `disallowed-methods`).
    pub(crate) fn restore_disabled(&self, since: u64) {
        self.set_flag(ENABLED, false);
        self.disabled_since.store(since.max(1), Relaxed);
    }
    pub(super) fn set_weight(&self, weight: f64) {
        self.weight.store(weight.to_bits(), Relaxed);
    }
    pub fn record_check(&self, check: LastCheck) {
        *self.last_check.lock() = Some(check);
    }
    pub fn last_check(&self) -> Option<LastCheck> {
        self.last_check.lock().clone()
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
