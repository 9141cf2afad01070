//! The state the request path reads now. A reload (SIGHUP) builds a
//! successor [`State`] from the new file and swaps it in whole; requests
//! already routed finish on the state they started with (their in-flight
//! guards hold it). Background services that depend on the state's shape
//! (the monitors) watch [`Live::generation`] and rebuild.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::affinity::cookie::CookieKeys;
use crate::config::Config;
use crate::state::upgraded::Upgraded;
use crate::state::State;

/// The current [`State`], replaced whole by a reload.
pub struct Live {
    current: ArcSwap<State>,
    generation: watch::Sender<u64>,
    /// The open upgraded connections, kept across reloads.
    upgraded: Arc<Upgraded>,
}

impl Live {
    pub fn new(state: State) -> Arc<Live> {
        Arc::new(Live {
            current: ArcSwap::from_pointee(state),
            generation: watch::Sender::new(0),
            upgraded: Arc::default(),
        })
    }

    /// The open upgraded connections (WebSockets) of this process.
    pub fn upgraded(&self) -> &Arc<Upgraded> {
        &self.upgraded
    }

    /// The state now (one reference-count increment).
    pub fn load(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// Swaps in `state` and tells the watchers.
    pub fn replace(&self, state: State) {
        self.current.store(Arc::new(state));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes each time the state is replaced.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// The state a reload to `config` leads to, before run-time changes are laid
/// over it: the same clock and session table, and for every endpoint that
/// stays (same pool and name) what was learnt about it — its health, last
/// check and round-trip time while its address is the same, and the start of
/// its drain while it stays disabled. An endpoint the new file disables
/// starts draining `now_ms`. The state's own successor: it may carry a drain
/// over (clippy.toml `disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub fn successor(old: &State, config: &Config, keys: CookieKeys, now_ms: u64) -> State {
    let new = State::with(config, keys, old.clock, Arc::clone(&old.sessions));
    for pool in &new.pools {
        for e in &pool.endpoints {
            let before = old
                .find_endpoint(pool.name(), e.name())
                .ok()
                .map(|at| old.endpoint(at));
            if before
                .filter(|b| b.conf.socket_addr == e.conf.socket_addr)
                .is_none()
            {
                // Added (or moved to a new address): its slow start begins.
                e.mark_usable_since(now_ms);
            }
            if let Some(before) = before.filter(|b| b.conf.socket_addr == e.conf.socket_addr) {
                e.set_healthy(before.healthy());
                // A slow start in progress goes on.
                if before.marked_usable_since() > 0 {
                    e.mark_usable_since(before.marked_usable_since());
                }
                if let Some(rtt) = before.rtt() {
                    e.set_rtt(rtt);
                }
                if let Some(check) = before.last_check() {
                    e.record_check(check);
                }
            }
            if !e.enabled() {
                let since = before.and_then(|b| b.disabled_since()).unwrap_or(now_ms);
                e.restore_disabled(since);
            }
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MONOTONIC_BASE;
    use crate::config::OriginSteering;
    use crate::state::fixtures::{config, pool};
    use crate::state::LastCheck;

    #[test]
    fn what_was_learnt_about_an_endpoint_survives_a_reload() {
        let mut cfg = config(vec![pool("p", 3, OriginSteering::Random)], &["p"], None);
        let old = State::new(&cfg, CookieKeys::random());
        let p0 = old.find_endpoint("p", "p-0").unwrap();
        old.endpoint(p0).set_healthy(false);
        old.endpoint(p0).record_check(LastCheck {
            unix_ms: 5,
            failure: Some("refused".into()),
        });
        let p1 = old.find_endpoint("p", "p-1").unwrap();
        crate::changes::test_door::set_endpoint_enabled(&old, p1, false, MONOTONIC_BASE + 100);
        old.sessions.put(
            7,
            crate::affinity::table::TablePin {
                pool: 0,
                endpoint: 1,
            },
            MONOTONIC_BASE,
        );

        // The new file disables p-1 and p-2, and moves p-0 nowhere.
        let eps = &mut cfg.pools.get_mut("p").unwrap().endpoints;
        eps[1].enabled = false;
        eps[2].enabled = false;
        let new = successor(&old, &cfg, CookieKeys::random(), MONOTONIC_BASE + 900);
        let e = |name: &str| new.endpoint(new.find_endpoint("p", name).unwrap());
        assert!(!e("p-0").healthy(), "health carried over");
        assert_eq!(e("p-0").last_check().unwrap().unix_ms, 5);
        assert_eq!(
            e("p-1").disabled_since(),
            Some(MONOTONIC_BASE + 100),
            "its drain goes on"
        );
        assert_eq!(
            e("p-2").disabled_since(),
            Some(MONOTONIC_BASE + 900),
            "drains from the reload"
        );
        assert_eq!(new.sessions.len(), 1, "the same session table");
        assert_eq!(new.pools[0].up_count(), 0, "p-0 down, p-1 and p-2 disabled");
    }

    #[test]
    fn a_moved_endpoint_starts_over() {
        let mut cfg = config(vec![pool("p", 1, OriginSteering::Random)], &["p"], None);
        let old = State::new(&cfg, CookieKeys::random());
        old.endpoint(old.find_endpoint("p", "p-0").unwrap())
            .set_healthy(false);
        cfg.pools.get_mut("p").unwrap().endpoints[0].socket_addr = "127.0.0.1:1".parse().unwrap();
        let new = successor(&old, &cfg, CookieKeys::random(), MONOTONIC_BASE);
        assert!(new
            .endpoint(new.find_endpoint("p", "p-0").unwrap())
            .healthy());
    }

    #[test]
    fn slow_start_begins_for_added_endpoints_and_goes_on_across_a_reload() {
        let mut cfg = config(vec![pool("p", 2, OriginSteering::Random)], &["p"], None);
        let old = State::new(&cfg, CookieKeys::random());
        let at = |s: &State, name: &str| s.find_endpoint("p", name).unwrap();
        assert_eq!(
            old.endpoint(at(&old, "p-0")).usable_since(MONOTONIC_BASE),
            0
        );
        old.endpoint(at(&old, "p-1"))
            .mark_usable_since(MONOTONIC_BASE + 50);
        // The new file adds p-2.
        let extra = crate::state::fixtures::endpoint("p-2", 9002);
        cfg.pools.get_mut("p").unwrap().endpoints.push(extra);
        let now = MONOTONIC_BASE + 900;
        let new = successor(&old, &cfg, CookieKeys::random(), now);
        let since = |name: &str| new.endpoint(at(&new, name)).usable_since(now);
        assert_eq!(since("p-0"), 0, "usable all along");
        assert_eq!(since("p-1"), MONOTONIC_BASE + 50, "its slow start goes on");
        assert_eq!(since("p-2"), now, "added: its slow start begins");
    }

    #[test]
    fn replacing_bumps_the_generation() {
        let cfg = config(vec![pool("p", 1, OriginSteering::Random)], &["p"], None);
        let live = Live::new(State::new(&cfg, CookieKeys::random()));
        let seen = live.generation();
        live.replace(State::new(&cfg, CookieKeys::random()));
        assert_eq!(*seen.borrow(), 1);
    }
}
