//! Upgraded connections (WebSockets and other `101` tunnels) follow their
//! endpoint's state: the registry of the open ones by load balancer, pool
//! and endpoint names ([`Upgraded`], one per process, kept across reloads
//! by [`super::live::Live`]), and the decision of which must close now
//! ([`must_close`] and [`Verdicts`], pure: plain data and time).
//!
//! An endpoint that may take no more traffic — its drain ended, it was
//! disabled without a drain, its monitor calls it unhealthy, passive health
//! ejected it, or a reload removed it — has its upgraded connections closed
//! once that has held for `tether.upgraded_connections.close_grace`, so
//! their clients reconnect and are routed (re-pinned) by the usual rules.
//! While a drain runs they stay. A connection that never upgrades is never
//! in the registry: it costs nothing here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::affinity::drain::{drain_state, DrainState};
use crate::metrics::upgraded::{record_upgraded, Names, Open};
use crate::state::State;

/// What ends one open upgraded connection: the front door's mark of the
/// client connection (`front_door::guard::RequestMark`), whose next read then
/// ends and with it the relay both ways.
pub trait CloseSignal: std::fmt::Debug + Send + Sync {
    /// Ends the connection; `true` the first time only (later calls change nothing).
    fn close(&self) -> bool;
}

/// The close signals of one endpoint's open upgraded connections, by id.
type Marks = HashMap<u64, Arc<dyn CloseSignal>>;

/// The open upgraded connections of one process, by names.
#[derive(Debug, Default)]
pub struct Upgraded {
    next_id: AtomicU64,
    open: Mutex<HashMap<Arc<Names>, Marks>>,
}

/// One open upgraded connection in the registry (and counted in
/// `tether_upgraded_connections`) until dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Upgraded>,
    id: u64,
    /// Counted open until dropped; its names are the registry's key.
    open: Open,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock();
        let names: &Names = self.open.names();
        if let Some(marks) = open.get_mut(names) {
            marks.remove(&self.id);
            if marks.is_empty() {
                open.remove(names);
            }
        }
    }
}

impl Upgraded {
    /// Registers a connection just upgraded to `endpoint` of `pool` for load
    /// balancer `lb`; `mark` closes it.
    pub fn register(
        self: &Arc<Self>,
        lb: &str,
        pool: &str,
        endpoint: &str,
        mark: Arc<dyn CloseSignal>,
    ) -> Registration {
        let open = record_upgraded(lb, pool, endpoint);
        let id = self.next_id.fetch_add(1, Relaxed);
        self.open
            .lock()
            .entry(Arc::clone(open.names()))
            .or_default()
            .insert(id, mark);
        Registration {
            registry: Arc::clone(self),
            id,
            open,
        }
    }

    /// The names that have open upgraded connections now.
    pub fn keys(&self) -> Vec<Arc<Names>> {
        self.open.lock().keys().cloned().collect()
    }

    /// Open upgraded connections of `names` now.
    pub fn count(&self, names: &Names) -> usize {
        self.open.lock().get(names).map_or(0, HashMap::len)
    }

    /// Signals every open upgraded connection of `names` to close; returns how
    /// many were signalled now (not before). They leave the registry as they end.
    pub fn close(&self, names: &Names) -> usize {
        let marks: Vec<Arc<dyn CloseSignal>> = self
            .open
            .lock()
            .get(names)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        marks.iter().filter(|mark| mark.close()).count()
    }
}

/// What [`must_close`] reads of an endpoint, for one load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointNow {
    /// Monotonic ms it was disabled; `None` while enabled.
    pub disabled_since: Option<u64>,
    /// The load balancer's `drain_duration` in ms.
    pub drain_ms: u64,
    /// Healthy, in an enabled pool (a disabled pool's endpoints are
    /// unusable, as routing sees them).
    pub healthy: bool,
    /// Serving from the load balancer's fallback pool, whose health is ignored.
    pub health_ignored: bool,
    /// Ejected by passive health now.
    pub ejected: bool,
}

/// Why an endpoint's upgraded connections must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// The load balancer, the pool or the endpoint is gone (a reload).
    Removed,
    /// Disabled, and its drain (`drain_duration`) has ended.
    DrainEnded,
    /// Disabled without a drain (`drain_duration` 0).
    Disabled,
    /// Its monitor calls it unhealthy.
    Unhealthy,
    /// Passive health ejected it.
    Ejected,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Removed => "removed",
            Why::DrainEnded => "drain ended",
            Why::Disabled => "disabled",
            Why::Unhealthy => "unhealthy",
            Why::Ejected => "ejected",
        }
    }
}

/// Whether an endpoint (`None`: removed) may keep its upgraded connections
/// at `now_ms`, and if not, why.
pub fn must_close(endpoint: Option<EndpointNow>, now_ms: u64) -> Option<Why> {
    let Some(e) = endpoint else {
        return Some(Why::Removed);
    };
    match drain_state(e.disabled_since, e.drain_ms, now_ms) {
        DrainState::Drained if e.drain_ms == 0 => return Some(Why::Disabled),
        DrainState::Drained => return Some(Why::DrainEnded),
        DrainState::Draining { .. } => return None,
        DrainState::Active => {}
    }
    if !e.healthy && !e.health_ignored {
        return Some(Why::Unhealthy);
    }
    e.ejected.then_some(Why::Ejected)
}

/// What the state says now of the endpoint `names` name (`None`: removed, or
/// its pool no longer one of the load balancer's).
pub fn endpoint_now(state: &State, names: &Names, now_ms: u64) -> Option<EndpointNow> {
    let (lb, pool, endpoint) = names;
    let table = state.load_balancers();
    let lb = table.named(lb)?;
    let at = state.find_endpoint(pool, endpoint).ok()?;
    if !lb.is_default_pool(at.pool()) && lb.fallback_pool != Some(at.pool()) {
        return None; // a reload took the pool out of the load balancer
    }
    let e = state.endpoint(at);
    Some(EndpointNow {
        disabled_since: e.disabled_since(),
        drain_ms: lb.drain_ms,
        healthy: e.healthy() && state.pools[at.pool()].enabled(),
        health_ignored: lb.is_fallback_only(at.pool()),
        ejected: e.ejected(now_ms),
    })
}

/// When each endpoint's reason to close was first seen, so its connections
/// close `grace` after that (plain data: the closer's memory between ticks).
#[derive(Debug, Default)]
pub struct Verdicts {
    since: HashMap<Names, (Why, u64)>,
}

impl Verdicts {
    /// `why` (from [`must_close`]) holds for `names` at `now_ms`: returns the
    /// reason when its connections are due to close now (`why` has held for
    /// `grace_ms`). A reason that stops holding is forgotten; a new one
    /// starts its own grace.
    pub fn due(
        &mut self,
        names: &Names,
        why: Option<Why>,
        now_ms: u64,
        grace_ms: u64,
    ) -> Option<Why> {
        let Some(why) = why else {
            self.since.remove(names);
            return None;
        };
        let since = match self.since.get(names) {
            Some(&(seen, since)) if seen == why => since,
            _ => {
                self.since.insert(names.clone(), (why, now_ms));
                now_ms
            }
        };
        (now_ms.saturating_sub(since) >= grace_ms).then_some(why)
    }

    /// Forgets every endpoint but `open`'s (those without open connections).
    pub fn retain(&mut self, open: &[Arc<Names>]) {
        self.since.retain(|k, _| open.iter().any(|o| **o == *k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> EndpointNow {
        EndpointNow {
            disabled_since: None,
            drain_ms: 60_000,
            healthy: true,
            health_ignored: false,
            ejected: false,
        }
    }

    fn names(e: &str) -> Names {
        ("lb".into(), "p".into(), e.into())
    }

    #[test]
    fn a_usable_endpoint_keeps_its_connections() {
        assert_eq!(must_close(Some(up()), 1_000), None);
    }

    #[test]
    fn a_removed_endpoint_closes_them() {
        assert_eq!(must_close(None, 1_000), Some(Why::Removed));
    }

    #[test]
    fn a_drain_keeps_them_until_it_ends() {
        let draining = EndpointNow {
            disabled_since: Some(1_000),
            ..up()
        };
        assert_eq!(must_close(Some(draining), 1_000), None);
        assert_eq!(must_close(Some(draining), 60_999), None);
        assert_eq!(must_close(Some(draining), 61_000), Some(Why::DrainEnded));
        let unhealthy_too = EndpointNow {
            healthy: false,
            ..draining
        };
        assert_eq!(
            must_close(Some(unhealthy_too), 61_000),
            Some(Why::DrainEnded)
        );
    }

    #[test]
    fn disabled_without_a_drain_closes_at_once() {
        let disabled = EndpointNow {
            disabled_since: Some(1_000),
            drain_ms: 0,
            ..up()
        };
        assert_eq!(must_close(Some(disabled), 1_000), Some(Why::Disabled));
    }

    #[test]
    fn unhealthy_and_ejected_close_them_but_a_fallback_pool_ignores_health() {
        let unhealthy = EndpointNow {
            healthy: false,
            ..up()
        };
        assert_eq!(must_close(Some(unhealthy), 5), Some(Why::Unhealthy));
        let fallback = EndpointNow {
            health_ignored: true,
            ..unhealthy
        };
        assert_eq!(must_close(Some(fallback), 5), None);
        let ejected = EndpointNow {
            ejected: true,
            ..up()
        };
        assert_eq!(must_close(Some(ejected), 5), Some(Why::Ejected));
    }

    #[test]
    fn the_grace_counts_from_the_first_sighting_and_resets_when_the_reason_goes() {
        let mut v = Verdicts::default();
        let a = names("a");
        assert_eq!(v.due(&a, Some(Why::Unhealthy), 100, 500), None);
        assert_eq!(v.due(&a, Some(Why::Unhealthy), 599, 500), None);
        assert_eq!(
            v.due(&a, Some(Why::Unhealthy), 600, 500),
            Some(Why::Unhealthy)
        );
        // Healthy again: forgotten; unhealthy later starts a new grace.
        assert_eq!(v.due(&a, None, 700, 500), None);
        assert_eq!(v.due(&a, Some(Why::Unhealthy), 800, 500), None);
        // Another reason starts its own grace.
        assert_eq!(v.due(&a, Some(Why::Removed), 900, 500), None);
        assert_eq!(
            v.due(&a, Some(Why::Removed), 1_400, 500),
            Some(Why::Removed)
        );
        // No grace: at once.
        assert_eq!(
            v.due(&names("b"), Some(Why::Ejected), 5, 0),
            Some(Why::Ejected)
        );
        v.retain(&[Arc::new(names("b"))]);
        assert_eq!(v.since.len(), 1);
    }

    /// A close signal that remembers it was given.
    #[derive(Debug, Default)]
    struct Signal(std::sync::atomic::AtomicBool);

    impl CloseSignal for Signal {
        fn close(&self) -> bool {
            !self.0.swap(true, Relaxed)
        }
    }

    impl Signal {
        fn upgraded_closing(&self) -> bool {
            self.0.load(Relaxed)
        }
    }

    #[test]
    fn the_registry_closes_the_connections_of_one_endpoint_and_forgets_ended_ones() {
        let registry = Arc::new(Upgraded::default());
        let (m1, m2, m3) = (
            Arc::new(Signal::default()),
            Arc::new(Signal::default()),
            Arc::new(Signal::default()),
        );
        let r1 = registry.register("upgraded-registry-lb", "p", "a", m1.clone());
        let _r2 = registry.register("upgraded-registry-lb", "p", "a", m2.clone());
        let _r3 = registry.register("upgraded-registry-lb", "p", "b", m3.clone());
        let a: Names = ("upgraded-registry-lb".into(), "p".into(), "a".into());
        assert_eq!(registry.count(&a), 2);
        assert_eq!(registry.close(&a), 2);
        assert!(m1.upgraded_closing() && m2.upgraded_closing());
        assert!(!m3.upgraded_closing(), "another endpoint's stays");
        assert_eq!(registry.close(&a), 0, "signalled once: not counted again");
        drop(r1);
        assert_eq!(registry.count(&a), 1);
        assert_eq!(registry.keys().len(), 2);
    }
}
