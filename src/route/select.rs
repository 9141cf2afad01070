//! The selector: from a load balancer and the live state, decide which pool
//! and endpoint serve a request (SPEC 3.2–3.3), and where a request goes when
//! its connection fails (SPEC 4.4). The proxy only asks; all choices are here,
//! built from the pure pieces of [`crate::balance`].
//!
//! Order of resort: the first healthy pool in steering order; else the
//! fallback pool with its health ignored; else (Tether's decision, see
//! docs/routing.md) any pool that still has a usable endpoint below its threshold.

use std::borrow::Cow;

use crate::balance::hash::seeded_draws;
use crate::balance::pick::{least_loaded, weighted_by_prefix, weighted_random};
use crate::balance::shed::{hash_draw, sheds};
use crate::balance::slow_start::admits;
use crate::balance::steering::{order_pools, pool_healthy, PoolView};
use crate::config::{OriginSteering, ShedPolicy, SteeringPolicy};
use crate::state::{LbState, Pick, PoolState, State};

/// What a choice needs to know about the request and the dice.
pub struct Facts<'a> {
    /// Stable hash of the client IP (for `origin_steering: hash`).
    pub client_key: u64,
    /// A session's stable hash (`ip_cookie`, `header`, `source_ip`, failover of
    /// a pinned session): the endpoint then comes from the pool's hash ring,
    /// whatever `origin_steering` says, and a `random` pool order is drawn from
    /// it, so every instance makes the same choice for the same session.
    pub sticky_key: Option<u64>,
    /// Uniform draws in `[0, 1)`.
    pub rand: &'a mut dyn FnMut() -> f64,
    /// A pool this request's session was shed from (`load_shedding.session_percent`):
    /// served by it only when no other pool can.
    pub avoid_pool: Option<usize>,
    /// Monotonic now: endpoints ejected by passive health are not usable,
    /// and slow start counts from it.
    pub now_ms: u64,
    /// Slow start's admission key: the session's stable hash, else one
    /// random draw for the request.
    pub admission_key: u64,
}

/// Weighted draws tried before a linear pass over the pool.
const REJECTION_TRIES: usize = 8;

/// Which endpoints a pick may land on.
#[derive(Clone, Copy)]
enum Eligible {
    /// Healthy pool: enabled, healthy, weight > 0.
    Usable,
    /// Fallback pool: enabled, weight > 0, health ignored.
    Fallback,
}

/// The selector over one state: steering over its pools and endpoints,
/// failover. It reads the state (through `Deref`) and changes nothing but
/// the randomness it is handed.
#[derive(Clone, Copy)]
pub struct Selector<'s>(pub &'s State);

impl std::ops::Deref for Selector<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0
    }
}

impl Selector<'_> {
    /// The pools of `lb` in steering order (borrowed for `off`: no allocation).
    pub fn pool_order<'l>(
        &self,
        lb: &'l LbState,
        rand: &mut dyn FnMut() -> f64,
    ) -> Cow<'l, [usize]> {
        let policy = lb.conf.steering_policy;
        if policy == SteeringPolicy::Off {
            return Cow::Borrowed(&lb.default_pools);
        }
        let views: Vec<PoolView> = lb
            .default_pools
            .iter()
            .map(|&p| {
                let pool = &self.pools[p];
                PoolView {
                    weight: lb.conf.random_steering.weight_of(pool.name()),
                    in_flight: pool.in_flight(),
                    latency: pool.latency(),
                }
            })
            .collect();
        Cow::Owned(
            order_pools(policy, &views, &mut || rand())
                .into_iter()
                .map(|i| lb.default_pools[i])
                .collect(),
        )
    }

    /// A pool is healthy when enabled with at least `minimum_origins` endpoints up.
    pub fn pool_is_healthy(&self, pool: usize) -> bool {
        let p = &self.pools[pool];
        pool_healthy(p.enabled(), p.up_count(), p.conf.minimum_origins)
    }

    /// The endpoint for a new request of `lb`, or `None` when nothing is usable.
    pub fn choose(&self, lb: &LbState, facts: &mut Facts) -> Option<Pick> {
        let order = self.ordered(lb, facts);
        self.choose_in_order(lb, &order, None, true, facts)
    }

    /// Whether a new request is shed from healthy `pool` (its
    /// `load_shedding.default_percent`), or its session was.
    fn shed_from(&self, pool: usize, facts: &mut Facts) -> bool {
        if facts.avoid_pool == Some(pool) {
            return true;
        }
        let p = &self.pools[pool];
        let ls = &p.conf.load_shedding;
        if ls.default_percent <= 0.0 {
            return false;
        }
        let draw = match ls.default_policy {
            ShedPolicy::Random => (facts.rand)(),
            ShedPolicy::Hash => {
                hash_draw(p.shed_seed, facts.sticky_key.unwrap_or(facts.client_key))
            }
        };
        sheds(ls.default_percent, draw)
    }

    fn ordered<'l>(&self, lb: &'l LbState, facts: &mut Facts) -> Cow<'l, [usize]> {
        match facts.sticky_key {
            Some(key) => self.pool_order(lb, &mut seeded_draws(key)),
            None => self.pool_order(lb, facts.rand),
        }
    }

    /// The endpoint for a retry after `failed` refused the connection: another
    /// usable endpoint of the same pool, then (with `failover_across_pools`)
    /// of the later pools in order, then the fallback pool.
    pub fn failover(&self, lb: &LbState, failed: Pick, facts: &mut Facts) -> Option<Pick> {
        let in_fallback =
            lb.fallback_pool == Some(failed.pool()) && !lb.default_pools.contains(&failed.pool());
        let eligible = if in_fallback {
            Eligible::Fallback
        } else {
            Eligible::Usable
        };
        if let Some(pick) = self.pick_in_pool(failed.pool(), eligible, Some(failed), facts) {
            return Some(pick);
        }
        if !lb.conf.adaptive_routing.failover_across_pools || in_fallback {
            return None;
        }
        let order = self.ordered(lb, facts);
        let later = match order.iter().position(|&p| p == failed.pool()) {
            Some(at) => &order[at + 1..],
            None => &order[..],
        };
        self.choose_in_order(lb, later, Some(failed), false, facts)
    }

    /// `shed`: apply load shedding — a healthy pool that sheds this request
    /// is passed over for the next healthy one, and serves it only when
    /// none can.
    fn choose_in_order(
        &self,
        lb: &LbState,
        order: &[usize],
        exclude: Option<Pick>,
        shed: bool,
        facts: &mut Facts,
    ) -> Option<Pick> {
        let mut passed_over = None;
        for &pool in order {
            if self.pool_is_healthy(pool) {
                if shed && self.shed_from(pool, facts) {
                    passed_over.get_or_insert(pool);
                    continue;
                }
                if let Some(pick) = self.pick_in_pool(pool, Eligible::Usable, exclude, facts) {
                    return Some(pick);
                }
            }
        }
        if let Some(pool) = passed_over {
            if let Some(pick) = self.pick_in_pool(pool, Eligible::Usable, exclude, facts) {
                return Some(pick);
            }
        }
        if let Some(fallback) = lb.fallback_pool {
            if self.pools[fallback].enabled() {
                if let Some(pick) = self.pick_in_pool(fallback, Eligible::Fallback, exclude, facts)
                {
                    return Some(pick);
                }
            }
        }
        order.iter().find_map(|&pool| {
            if self.pools[pool].enabled() {
                self.pick_in_pool(pool, Eligible::Usable, exclude, facts)
            } else {
                None
            }
        })
    }

    /// An endpoint of `pool`; with `slow_start`, endpoints inside their
    /// window admit only their share of new sessions, unless none of the
    /// pool's endpoints would then serve.
    fn pick_in_pool(
        &self,
        pool: usize,
        eligible: Eligible,
        exclude: Option<Pick>,
        facts: &mut Facts,
    ) -> Option<Pick> {
        let window = self.pools[pool].slow_start_ms;
        if window > 0 && matches!(eligible, Eligible::Usable) {
            if let Some(pick) = self.pick_among(pool, eligible, exclude, true, facts) {
                return Some(pick);
            }
        }
        self.pick_among(pool, eligible, exclude, false, facts)
    }

    fn pick_among(
        &self,
        pool: usize,
        eligible: Eligible,
        exclude: Option<Pick>,
        slow_start: bool,
        facts: &mut Facts,
    ) -> Option<Pick> {
        let p: &PoolState = &self.pools[pool];
        let excluded = exclude.filter(|x| x.pool() == pool).map(|x| x.endpoint());
        let (now_ms, key) = (facts.now_ms, facts.admission_key);
        let ok = |i: usize| {
            let e = &p.endpoints[i];
            Some(i) != excluded
                && match eligible {
                    Eligible::Usable => e.usable() && !e.ejected(now_ms),
                    Eligible::Fallback => e.usable_as_fallback(),
                }
                && (!slow_start || {
                    let since = e.usable_since(now_ms);
                    since == 0 || admits(e.id, key, now_ms.saturating_sub(since), p.slow_start_ms)
                })
        };
        if let Some(key) = facts.sticky_key {
            let endpoint = p.ring().pick(key, ok)?;
            return self.pick(pool, endpoint);
        }
        let candidates = (0..p.endpoints.len()).filter(|&i| ok(i));
        let endpoint = match p.conf.origin_steering {
            OriginSteering::Random => {
                // O(log n) draws over all endpoints, rejecting unusable ones;
                // after a few misses (a mostly unusable pool), one linear pass.
                let cumulative = p.cumulative_weights();
                (0..REJECTION_TRIES)
                    .find_map(|_| {
                        weighted_by_prefix(&cumulative, (facts.rand)()).filter(|&i| ok(i))
                    })
                    .or_else(|| {
                        let r = (facts.rand)();
                        weighted_random(candidates.map(|i| (i, p.endpoints[i].weight())), r)
                    })
            }
            OriginSteering::Hash => p.ring().pick(facts.client_key, ok),
            OriginSteering::LeastOutstandingRequests => {
                let tie = ((facts.rand)() * 1e9) as u64;
                let loads = candidates.map(|i| {
                    let e = &p.endpoints[i];
                    (i, e.weight(), e.in_flight())
                });
                least_loaded(loads, tie)
            }
            OriginSteering::LeastConnections => {
                let tie = ((facts.rand)() * 1e9) as u64;
                let loads = candidates.map(|i| {
                    let e = &p.endpoints[i];
                    (i, e.weight(), e.connections())
                });
                least_loaded(loads, tie)
            }
        }?;
        self.pick(pool, endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::config::*;
    use crate::state::fixtures::{config, pool, set_health};

    fn choose(state: &State, seed: &mut u64) -> Option<(String, String)> {
        let table = state.load_balancers();
        let lb = table.get("anything").unwrap();
        let mut rand = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut facts = Facts {
            client_key: 42,
            sticky_key: None,
            rand: &mut rand,
            avoid_pool: None,
            now_ms: 0,
            admission_key: 0,
        };
        Selector(state).choose(lb, &mut facts).map(|p| {
            (
                state.pools[p.pool()].name().to_string(),
                state.endpoint(p).name().to_string(),
            )
        })
    }

    #[test]
    fn first_healthy_pool_serves_in_listed_order() {
        let cfg = config(
            vec![
                pool("a", 2, OriginSteering::Random),
                pool("b", 2, OriginSteering::Random),
            ],
            &["a", "b"],
            None,
        );
        let state = State::new(&cfg, CookieKeys::random());
        let mut seed = 1;
        for _ in 0..20 {
            assert_eq!(choose(&state, &mut seed).unwrap().0, "a");
        }
        set_health(&state, "a", &[false, false]);
        for _ in 0..20 {
            assert_eq!(choose(&state, &mut seed).unwrap().0, "b");
        }
    }

    #[test]
    fn pool_below_minimum_origins_fails_over() {
        let mut a = pool("a", 3, OriginSteering::Random);
        a.minimum_origins = 2;
        let cfg = config(
            vec![a, pool("b", 1, OriginSteering::Random)],
            &["a", "b"],
            None,
        );
        let state = State::new(&cfg, CookieKeys::random());
        set_health(&state, "a", &[true, false, false]);
        let mut seed = 7;
        assert_eq!(choose(&state, &mut seed).unwrap().0, "b");
        set_health(&state, "a", &[true, true, false]);
        assert_eq!(choose(&state, &mut seed).unwrap().0, "a");
    }

    #[test]
    fn fallback_serves_with_health_ignored_then_503() {
        let cfg = config(
            vec![
                pool("a", 1, OriginSteering::Random),
                pool("fb", 1, OriginSteering::Random),
            ],
            &["a"],
            Some("fb"),
        );
        let state = State::new(&cfg, CookieKeys::random());
        set_health(&state, "a", &[false]);
        set_health(&state, "fb", &[false]);
        let mut seed = 3;
        assert_eq!(
            choose(&state, &mut seed),
            Some(("fb".into(), "fb-0".into()))
        );
        let fb0 = state.pick(state.pool_index("fb").unwrap(), 0).unwrap();
        crate::changes::test_door::set_endpoint_enabled(&state, fb0, false, 1);
        assert_eq!(choose(&state, &mut seed), None);
    }

    #[test]
    fn weight_zero_takes_no_new_requests() {
        let mut a = pool("a", 2, OriginSteering::Random);
        a.endpoints[0].weight = 0.0;
        let cfg = config(vec![a], &["a"], None);
        let state = State::new(&cfg, CookieKeys::random());
        let mut seed = 11;
        for _ in 0..50 {
            assert_eq!(choose(&state, &mut seed).unwrap().1, "a-1");
        }
    }

    #[test]
    fn hash_steering_is_stable_for_a_client() {
        let cfg = config(vec![pool("a", 5, OriginSteering::Hash)], &["a"], None);
        let state = State::new(&cfg, CookieKeys::random());
        let mut seed = 5;
        let first = choose(&state, &mut seed);
        for _ in 0..20 {
            assert_eq!(choose(&state, &mut seed), first);
        }
    }

    #[test]
    fn failover_avoids_the_failed_endpoint_and_crosses_pools_only_when_allowed() {
        let mut cfg = config(
            vec![
                pool("a", 1, OriginSteering::Random),
                pool("b", 1, OriginSteering::Random),
            ],
            &["a", "b"],
            None,
        );
        let state = State::new(&cfg, CookieKeys::random());
        let table = state.load_balancers();
        let lb = table.get("x").unwrap();
        let mut r = || 0.5;
        let mut facts = Facts {
            client_key: 1,
            sticky_key: None,
            rand: &mut r,
            avoid_pool: None,
            now_ms: 0,
            admission_key: 0,
        };
        let failed = Pick::unchecked(state.pool_index("a").unwrap(), 0);
        assert_eq!(Selector(&state).failover(lb, failed, &mut facts), None);

        cfg.load_balancers
            .get_mut("*")
            .unwrap()
            .adaptive_routing
            .failover_across_pools = true;
        let state = State::new(&cfg, CookieKeys::random());
        let table = state.load_balancers();
        let lb = table.get("x").unwrap();
        let b = Selector(&state).failover(lb, failed, &mut facts).unwrap();
        assert_eq!(state.pools[b.pool()].name(), "b");
    }

    #[test]
    fn in_flight_guard_counts_and_releases() {
        let cfg = config(vec![pool("a", 1, OriginSteering::Random)], &["a"], None);
        let state = std::sync::Arc::new(State::new(&cfg, CookieKeys::random()));
        let at = Pick::unchecked(0, 0);
        let guard = state.begin_request(at);
        assert_eq!(state.endpoint(at).in_flight(), 1);
        assert_eq!(state.pools[0].in_flight(), 1);
        drop(guard);
        assert_eq!(state.endpoint(at).in_flight(), 0);
    }

    fn shedding_state(ls: LoadShedding) -> State {
        let mut a = pool("a", 2, OriginSteering::Hash);
        a.load_shedding = ls;
        let cfg = config(
            vec![a, pool("b", 2, OriginSteering::Hash)],
            &["a", "b"],
            None,
        );
        State::new(&cfg, CookieKeys::random())
    }

    /// Share of `n` requests (client keys 0..n) that pool `a` sheds to `b`.
    fn shed_share(state: &State, n: u64, sticky: bool) -> f64 {
        let table = state.load_balancers();
        let lb = table.get("x").unwrap();
        let mut draws = crate::balance::hash::seeded_draws(9);
        let shed = (0..n)
            .filter(|&i| {
                let key = crate::balance::hash::stable_hash(&i.to_le_bytes());
                let mut facts = Facts {
                    client_key: key,
                    sticky_key: sticky.then_some(key),
                    rand: &mut draws,
                    avoid_pool: None,
                    now_ms: 0,
                    admission_key: 0,
                };
                let pick = Selector(state).choose(lb, &mut facts).unwrap();
                state.pools[pick.pool()].name() == "b"
            })
            .count();
        shed as f64 / n as f64
    }

    #[test]
    fn load_shedding_moves_its_share_to_the_next_pool() {
        for policy in [ShedPolicy::Random, ShedPolicy::Hash] {
            for percent in [10.0, 50.0, 90.0] {
                let state = shedding_state(LoadShedding {
                    default_percent: percent,
                    default_policy: policy,
                    ..LoadShedding::default()
                });
                for sticky in [false, true] {
                    let got = shed_share(&state, 10_000, sticky) * 100.0;
                    println!("load shedding {policy:?} {percent}%, sticky {sticky}, 10,000 requests: {got:.2}% shed");
                    assert!(
                        (got - percent).abs() <= 2.0,
                        "{policy:?} {percent}%: {got:.2}% shed"
                    );
                }
            }
        }
        // Hash: another instance (another state) sheds exactly the same keys.
        let ls = LoadShedding {
            default_percent: 30.0,
            default_policy: ShedPolicy::Hash,
            ..LoadShedding::default()
        };
        let pools_of = |state: &State| -> Vec<Option<usize>> {
            let table = state.load_balancers();
            let lb = table.get("x").unwrap();
            (0..2000u64)
                .map(|i| {
                    let mut rand = || 0.5;
                    let mut facts = Facts {
                        client_key: i,
                        sticky_key: None,
                        rand: &mut rand,
                        avoid_pool: None,
                        now_ms: 0,
                        admission_key: 0,
                    };
                    Selector(state).choose(lb, &mut facts).map(|p| p.pool())
                })
                .collect()
        };
        let one = pools_of(&shedding_state(ls));
        assert_eq!(one, pools_of(&shedding_state(ls)));
        let b = one.iter().filter(|p| **p == Some(1)).count();
        assert!((500..700).contains(&b), "{b} of 2000 shed");
    }

    #[test]
    fn shed_traffic_stays_when_the_next_pool_cannot_take_it() {
        let state = shedding_state(LoadShedding {
            default_percent: 100.0,
            ..LoadShedding::default()
        });
        assert_eq!(shed_share(&state, 100, false), 1.0);
        set_health(&state, "b", &[false, false]);
        assert_eq!(shed_share(&state, 100, false), 0.0);
    }

    #[test]
    fn slow_start_ramps_the_share_of_new_sessions_over_the_window() {
        for steering in [OriginSteering::Hash, OriginSteering::Random] {
            slow_start_ramp(steering);
        }
    }

    fn slow_start_ramp(steering: OriginSteering) {
        let mut a = pool("a", 2, steering);
        a.slow_start = std::time::Duration::from_secs(30);
        let cfg = config(vec![a], &["a"], None);
        let state = State::new(&cfg, CookieKeys::random());
        let table = state.load_balancers();
        let lb = table.get("x").unwrap();
        let since = 1_000_000;
        state.pools[0].endpoints[1].mark_usable_since(since);
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| crate::balance::hash::stable_hash(&i.to_le_bytes()))
            .collect();
        // Share of the sessions the warming endpoint takes at `now_ms`:
        // `sticky` picks by the hash ring, else by `origin_steering`.
        let share = |now_ms: u64, sticky: bool| {
            let mut draws = crate::balance::hash::seeded_draws(3);
            let n = keys
                .iter()
                .filter(|&&k| {
                    let mut facts = Facts {
                        client_key: k,
                        sticky_key: sticky.then_some(k),
                        rand: &mut draws,
                        avoid_pool: None,
                        now_ms,
                        admission_key: k,
                    };
                    Selector(&state).choose(lb, &mut facts).unwrap().endpoint() == 1
                })
                .count();
            n as f64 / keys.len() as f64
        };
        for sticky in [true, false] {
            let full = share(since + 30_000, sticky);
            assert!((0.4..0.6).contains(&full), "{full}");
            assert_eq!(share(since, sticky), 0.0);
            for (at, want) in [(7_500, 0.25), (15_000, 0.5), (22_500, 0.75)] {
                let got = share(since + at, sticky) / full;
                println!("slow start 30 s, {steering:?}, sticky {sticky}: at {at} ms {got:.4} of the full share (target {want})");
                assert!(
                    (got - want).abs() <= 0.05,
                    "sticky {sticky}, {at} ms into 30 s: {got:.3} of the full share"
                );
            }
        }
        // Only endpoint 1 usable: it serves whatever slow start says.
        set_health(&state, "a", &[false, true]);
        assert_eq!(share(since + 1, true), 1.0);
    }
}
