//! Which session pins the cluster shares, and taking in a peer's. Pure
//! decisions over the live state: no Redis here ([`super::link`] carries
//! them).
//!
//! A `header` / `source_ip` session whose pin equals the hash ring's choice
//! needs no write: every replica computes that choice from the session key.
//! Only pins that deviate are shared — re-pins (sticky failover, unhealthy,
//! drained, expired, invalid) and new sessions placed away from the ring's
//! first choice because it was unusable then — so that when the preferred
//! endpoint comes back, every replica keeps the session where it went.
//! Hits write nothing: no write per request.

use crate::affinity::table::TablePin;
use crate::balance::hash::seeded_draws;
use crate::route::select::Selector;
use crate::route::sticky::{Decision, Routed, Session};
use crate::state::{LbState, Pick, State};

use super::wire::SharedPin;

/// The ring's choice for `key` with every endpoint up: the first pool in the
/// session's steering order, the first point of the ring at the key.
pub fn ring_choice(state: &State, lb: &LbState, key: u64) -> Option<Pick> {
    let order = Selector(state).pool_order(lb, &mut seeded_draws(key));
    let pool = *order.first()?;
    let endpoint = state.pools[pool].ring().pick(key, |_| true)?;
    state.pick(pool, endpoint)
}

/// The pin this response writes that the other replicas cannot compute, if
/// any (module docs).
pub fn to_share(state: &State, lb: &LbState, routed: &Routed) -> Option<SharedPin> {
    let Session::Table { key } = routed.session else {
        return None;
    };
    if !routed.decision.pins() {
        return None;
    }
    if routed.decision == Decision::New && ring_choice(state, lb, key) == Some(routed.pick) {
        return None;
    }
    Some(SharedPin {
        key,
        pool: state.pools[routed.pick.pool()].name().to_string(),
        endpoint: state.endpoint(routed.pick).name().to_string(),
        ttl_ms: lb.ttl_ms,
    })
}

/// Puts a peer's pin into the session table, last used at `last_used_ms`.
/// `false`: this configuration has no such endpoint (the pin is ignored).
pub fn take_in(state: &State, pin: &SharedPin, last_used_ms: u64) -> bool {
    let Ok(at) = state.find_endpoint(&pin.pool, &pin.endpoint) else {
        return false;
    };
    let table_pin = TablePin {
        pool: at.pool() as u32,
        endpoint: at.endpoint() as u32,
    };
    state.sessions.put(pin.key, table_pin, last_used_ms);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::clock::Now;
    use crate::config::*;
    use crate::route::sticky::Sticky;
    use crate::state::fixtures::{config, pool, set_health};
    use std::sync::Arc;

    fn state() -> State {
        let mut cfg = config(vec![pool("p", 4, OriginSteering::Random)], &["p"], None);
        let lb = cfg.load_balancers.get_mut("*").unwrap();
        lb.session_affinity = SessionAffinity::SourceIp;
        lb.session_affinity_ttl = std::time::Duration::from_secs(1800);
        lb.session_affinity_attributes.zero_downtime_failover = ZeroDowntimeFailover::Sticky;
        State::new(&cfg, CookieKeys::random())
    }

    fn lb(s: &State) -> Arc<LbState> {
        Arc::clone(s.load_balancers().get("x").unwrap())
    }

    const T0: Now = Now {
        ms: 1_000,
        unix_secs: 1_700_000_000,
    };

    fn visit(s: &State, ip: &str) -> Routed {
        let routed = Sticky(s)
            .route(
                &lb(s),
                std::iter::empty(),
                None,
                Some(ip.parse().unwrap()),
                T0,
                &mut || 0.5,
            )
            .unwrap();
        Sticky(s).commit(&lb(s), &routed, T0);
        routed
    }

    #[test]
    fn only_pins_away_from_the_ring_are_shared() {
        let s = state();
        let lb = lb(&s);
        // Healthy: new sessions land on the ring's choice; hits write nothing.
        for i in 0..50 {
            let ip = format!("10.0.0.{i}");
            let first = visit(&s, &ip);
            assert_eq!(first.decision, Decision::New);
            assert_eq!(to_share(&s, &lb, &first), None, "{ip}");
            let again = visit(&s, &ip);
            assert_eq!(again.decision, Decision::Hit);
            assert_eq!(to_share(&s, &lb, &again), None);
        }
        // p-0 goes down: its sessions are re-pinned and shared; new sessions
        // whose ring choice is p-0 are placed elsewhere and shared too.
        set_health(&s, "p", &[false, true, true, true]);
        let mut shared = 0;
        for i in 0..200 {
            let ip = format!("10.0.{}.{}", i / 100, i % 100);
            let routed = visit(&s, &ip);
            let pin = to_share(&s, &lb, &routed);
            let key = match routed.session {
                Session::Table { key } => key,
                _ => unreachable!(),
            };
            let preferred = ring_choice(&s, &lb, key).unwrap();
            let on_dead = s.endpoint(preferred).name() == "p-0";
            assert_eq!(pin.is_some(), on_dead, "{ip}: {:?}", routed.decision);
            if let Some(pin) = pin {
                shared += 1;
                assert_eq!((pin.key, pin.ttl_ms), (key, 1_800_000));
                assert_ne!(pin.endpoint, "p-0");
            }
        }
        assert!((25..=75).contains(&shared), "about a quarter: {shared}");
    }

    #[test]
    fn a_peers_pin_is_honoured_and_unknown_endpoints_ignored() {
        let (a, b) = (state(), state());
        set_health(&a, "p", &[false, true, true, true]);
        // Find a client whose ring choice is p-0: a re-pins it.
        let (ip, pin) = (0..255)
            .find_map(|i| {
                let ip = format!("192.0.2.{i}");
                let routed = visit(&a, &ip);
                to_share(&a, &lb(&a), &routed).map(|p| (ip, p))
            })
            .unwrap();
        assert!(take_in(&b, &pin, T0.ms));
        // b never saw p-0 down, yet sends the session where a did.
        let on_b = visit(&b, &ip);
        assert_eq!(on_b.decision, Decision::Hit);
        assert_eq!(b.endpoint(on_b.pick).name(), pin.endpoint);
        let unknown = SharedPin {
            endpoint: "gone".into(),
            ..pin
        };
        assert!(!take_in(&b, &unknown, T0.ms));
    }
}
