//! The sticky selector (SPEC 4): for every request — never once per
//! connection — read the session's pin, honour it while its endpoint is
//! usable for existing sessions, otherwise choose and re-pin; on a refused
//! connection apply `zero_downtime_failover`; after the response say what to
//! write back (a `Set-Cookie`, a table entry). Choices of endpoints are
//! delegated to [`crate::route::select`]; the cookie codec, session keys, table and
//! drain timeline are the pure pieces of [`crate::affinity`].

use std::net::IpAddr;

use crate::affinity::cookie::{nonce_session_key, Decoded, Pin};
use crate::affinity::cookie_header::cookie_line;
use crate::affinity::drain::drain_state;
use crate::affinity::table::{Lookup, TablePin};
use crate::balance::shed::{hash_draw, sheds};
use crate::clock::Now;
use crate::config::{SessionAffinity, ZeroDowntimeFailover};
use crate::route::request::client_key;
use crate::route::select::{Facts, Selector};
use crate::state::{LbState, Pick, State};

pub use crate::affinity::decision::Decision;

/// Where a request's session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// No affinity for this request.
    None,
    /// `cookie` / `ip_cookie`. `key` is the session's stable hash, used to
    /// choose a failover or re-pin target: the hash of its cookie's nonce
    /// (for a version 1 cookie, of its value). `nonce` is what the next
    /// cookie of the session carries: the session's own, or a fresh random
    /// one for a new session (or one whose v1 cookie had none).
    Cookie { key: u64, nonce: u64 },
    /// `header` / `source_ip`: the session-table key.
    Table { key: u64 },
}

impl Session {
    fn key(self) -> Option<u64> {
        match self {
            Session::None => None,
            Session::Cookie { key, .. } | Session::Table { key } => Some(key),
        }
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub pick: Pick,
    pub decision: Decision,
    pub session: Session,
}

/// Whether a pinned endpoint may keep serving its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinStatus {
    Usable,
    Unhealthy,
    Drained,
    /// Its pool no longer belongs to this load balancer.
    Foreign,
}

/// Session affinity over the selector, for one state: where a request's
/// session says it goes, what its connection failure changes, and what
/// the response pins. Reads the state through `Deref`; the session table
/// and cookies are its only writes.
#[derive(Clone, Copy)]
pub struct Sticky<'s>(pub &'s State);

impl std::ops::Deref for Sticky<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0
    }
}

impl Sticky<'_> {
    fn selector(&self) -> Selector<'_> {
        Selector(self.0)
    }

    fn pin_status(&self, lb: &LbState, pick: Pick, now_ms: u64) -> PinStatus {
        if !lb.is_default_pool(pick.pool()) && lb.fallback_pool != Some(pick.pool()) {
            return PinStatus::Foreign;
        }
        let endpoint = self.endpoint(pick);
        if !drain_state(endpoint.disabled_since(), lb.drain_ms, now_ms).keeps_sessions() {
            return PinStatus::Drained;
        }
        if !self.pools[pick.pool()].enabled() || !endpoint.healthy() || endpoint.ejected(now_ms) {
            return PinStatus::Unhealthy;
        }
        if lb.is_fallback_only(pick.pool())
            && lb
                .default_pools
                .iter()
                .any(|&p| self.selector().pool_is_healthy(p))
        {
            return PinStatus::Unhealthy;
        }
        PinStatus::Usable
    }

    /// Routes one request of `lb`. `cflb` are the request's `__cflb` values,
    /// `header_key` its `header`-affinity session key (if it has one).
    /// `None`: nothing usable (503).
    pub fn route<'v>(
        &self,
        lb: &LbState,
        cflb: impl Iterator<Item = &'v str>,
        header_key: Option<u64>,
        client: Option<IpAddr>,
        now: Now,
        rand: &mut dyn FnMut() -> f64,
    ) -> Option<Routed> {
        let client_hash = client_key(client);
        let mut avoid_pool = None;
        let mut shed = |hit: Routed| {
            if !self.session_shed(lb, &hit) {
                return Err(hit);
            }
            avoid_pool = Some(hit.pick.pool());
            Ok((Decision::RepinShed, hit.session, hit.session.key()))
        };
        let (decision, session, sticky_key) = match lb.conf.session_affinity {
            SessionAffinity::None => (Decision::None, Session::None, None),
            SessionAffinity::Cookie | SessionAffinity::IpCookie => {
                match self.read_cookies(lb, cflb, now) {
                    Ok(hit) => match shed(hit) {
                        Ok(repin) => repin,
                        Err(hit) => return Some(hit),
                    },
                    // An existing session: chosen by its own stable hash, so
                    // its sessions spread by weight and every instance agrees.
                    Err((decision, Some(existing))) => (decision, existing, existing.key()),
                    Err((decision, None)) => {
                        let by_ip = lb.conf.session_affinity == SessionAffinity::IpCookie;
                        let nonce = rand::random::<u64>();
                        // `ip_cookie`: the client IP picks, and re-picks on a
                        // refused first connection, alike on every instance.
                        let key = if by_ip {
                            client_hash
                        } else {
                            nonce_session_key(nonce)
                        };
                        let session = Session::Cookie { key, nonce };
                        (decision, session, by_ip.then_some(client_hash))
                    }
                }
            }
            SessionAffinity::Header | SessionAffinity::SourceIp => {
                let key = match lb.conf.session_affinity {
                    SessionAffinity::SourceIp => {
                        client.map(|ip| crate::affinity::key::source_ip_key(lb.id, ip))
                    }
                    _ => header_key,
                };
                match key {
                    None => (Decision::None, Session::None, None),
                    Some(key) => match self.read_table(lb, key, now.ms) {
                        Ok(hit) => match shed(hit) {
                            Ok(repin) => repin,
                            Err(hit) => return Some(hit),
                        },
                        Err(decision) => (decision, Session::Table { key }, Some(key)),
                    },
                }
            }
        };
        let admission_key = session.key().unwrap_or_else(|| random_key(rand));
        let mut facts = Facts {
            client_key: client_hash,
            sticky_key,
            rand,
            avoid_pool,
            now_ms: now.ms,
            admission_key,
        };
        let pick = self.selector().choose(lb, &mut facts)?;
        Some(Routed {
            pick,
            decision,
            session,
        })
    }

    /// Whether an honoured pin's session is shed from its pool
    /// (`load_shedding.session_percent`, by the session's stable hash): only
    /// while another of the load balancer's pools is healthy to take it.
    fn session_shed(&self, lb: &LbState, hit: &Routed) -> bool {
        let pool = hit.pick.pool();
        let p = &self.pools[pool];
        let percent = p.conf.load_shedding.session_percent;
        let Some(key) = hit.session.key() else {
            return false;
        };
        percent > 0.0
            && sheds(percent, hash_draw(p.shed_seed, key))
            && lb
                .default_pools
                .iter()
                .any(|&other| other != pool && self.selector().pool_is_healthy(other))
    }

    /// A usable pin among the cookies → `Ok`; else the most telling reason
    /// to pin anew, with the session of that cookie when it is authentic and
    /// of this load balancer (an existing session keeps its identity).
    fn read_cookies<'v>(
        &self,
        lb: &LbState,
        cflb: impl Iterator<Item = &'v str>,
        now: Now,
    ) -> Result<Routed, (Decision, Option<Session>)> {
        let mut why = (Decision::New, None);
        for value in cflb {
            let (reason, pin) = match self.keys.decode(value, now.unix_secs) {
                Decoded::Valid(pin) if pin.lb_id == lb.id => {
                    let reason = match self.endpoint_by_id(pin.endpoint_id) {
                        None => Decision::Invalid,
                        Some(pick) => match self.pin_status(lb, pick, now.ms) {
                            PinStatus::Usable => {
                                return Ok(Routed {
                                    pick,
                                    decision: Decision::Hit,
                                    session: cookie_session(&pin, value),
                                })
                            }
                            PinStatus::Unhealthy => Decision::RepinUnhealthy,
                            PinStatus::Drained => Decision::RepinDrained,
                            PinStatus::Foreign => Decision::Invalid,
                        },
                    };
                    (reason, Some(pin))
                }
                Decoded::Expired(pin) if pin.lb_id == lb.id => (Decision::Expired, Some(pin)),
                Decoded::Valid(_) | Decoded::Expired(_) | Decoded::Invalid => {
                    (Decision::Invalid, None)
                }
            };
            if reason > why.0 || (reason == why.0 && why.1.is_none()) {
                why = (reason, pin.map(|pin| cookie_session(&pin, value)));
            }
        }
        Err(why)
    }

    fn read_table(&self, lb: &LbState, key: u64, now_ms: u64) -> Result<Routed, Decision> {
        let pinned = match self.sessions.get(key, lb.ttl_ms, now_ms) {
            Lookup::Miss => return Err(Decision::New),
            Lookup::Expired(_) => return Err(Decision::Expired),
            Lookup::Hit(pin) => pin,
        };
        let Some(pick) = self.pick(pinned.pool as usize, pinned.endpoint as usize) else {
            return Err(Decision::Invalid);
        };
        match self.pin_status(lb, pick, now_ms) {
            PinStatus::Usable => Ok(Routed {
                pick,
                decision: Decision::Hit,
                session: Session::Table { key },
            }),
            PinStatus::Unhealthy => Err(Decision::RepinUnhealthy),
            PinStatus::Drained => Err(Decision::RepinDrained),
            PinStatus::Foreign => Err(Decision::Invalid),
        }
    }

    /// The connection to `routed.pick` failed before anything was sent.
    /// Returns where to retry and the decision that now applies, or `None`
    /// to give up (502). A pinned session follows `zero_downtime_failover`;
    /// any other request is retried once. The target comes from the
    /// session's stable hash when there is one.
    pub fn connect_failed(
        &self,
        lb: &LbState,
        routed: &Routed,
        client: Option<IpAddr>,
        rand: &mut dyn FnMut() -> f64,
    ) -> Option<(Pick, Decision)> {
        let decision = if routed.decision == Decision::Hit {
            match lb.conf.session_affinity_attributes.zero_downtime_failover {
                ZeroDowntimeFailover::None => return None,
                ZeroDowntimeFailover::Temporary => Decision::FailoverTemporary,
                ZeroDowntimeFailover::Sticky => Decision::FailoverSticky,
            }
        } else {
            routed.decision
        };
        let admission_key = routed.session.key().unwrap_or_else(|| random_key(rand));
        let mut facts = Facts {
            client_key: client_key(client),
            sticky_key: routed.session.key(),
            rand,
            avoid_pool: None,
            now_ms: self.clock.now_ms(),
            admission_key,
        };
        let pick = self.selector().failover(lb, routed.pick, &mut facts)?;
        Some((pick, decision))
    }

    /// After the response: pins the session to where it was served when the
    /// decision says so. Returns the `Set-Cookie` line for cookie sessions.
    pub fn commit(&self, lb: &LbState, routed: &Routed, now: Now) -> Option<String> {
        if !routed.decision.pins() {
            return None;
        }
        match routed.session {
            Session::None => None,
            Session::Cookie { nonce, .. } => {
                let pin = Pin {
                    lb_id: lb.id,
                    endpoint_id: self.endpoint(routed.pick).id,
                    expires: now
                        .unix_secs
                        .saturating_add(lb.conf.session_affinity_ttl.as_secs()),
                    nonce: Some(nonce),
                };
                Some(cookie_line(&self.keys.encode(&pin), &lb.set_cookie_tail))
            }
            Session::Table { key } => {
                let pin = TablePin {
                    pool: routed.pick.pool() as u32,
                    endpoint: routed.pick.endpoint() as u32,
                };
                self.sessions.put(key, pin, now.ms);
                None
            }
        }
    }
}

/// The session of an authentic cookie: its stable hash, and the nonce its
/// next cookie carries (a version 1 cookie gets a fresh one).
/// A random 53-bit key from a uniform draw (slow start's admission key of a
/// request without a session).
fn random_key(rand: &mut dyn FnMut() -> f64) -> u64 {
    (rand() * 9_007_199_254_740_992.0) as u64
}

fn cookie_session(pin: &Pin, value: &str) -> Session {
    Session::Cookie {
        key: pin.session_key(value),
        nonce: pin.nonce.unwrap_or_else(rand::random),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::config::*;
    use crate::state::fixtures::{config, pool, set_health};
    use std::sync::Arc;

    const KEY: &[u8] = b"unit-test key, thirty-two bytes!";

    fn keys() -> CookieKeys {
        CookieKeys::from_keys(vec![KEY.to_vec()])
    }

    /// Pool `p` (3 endpoints, random steering) with fallback `fb`; the `"*"`
    /// load balancer gets `affinity` and `attrs`.
    fn state(affinity: SessionAffinity, attrs: SessionAffinityAttributes) -> State {
        let mut cfg = config(
            vec![
                pool("p", 3, OriginSteering::Random),
                pool("fb", 1, OriginSteering::Random),
            ],
            &["p"],
            Some("fb"),
        );
        let lb = cfg.load_balancers.get_mut("*").unwrap();
        lb.session_affinity = affinity;
        lb.session_affinity_ttl = std::time::Duration::from_secs(match affinity {
            SessionAffinity::Header | SessionAffinity::SourceIp => 1800,
            _ => 82800,
        });
        lb.session_affinity_attributes = attrs;
        State::new(&cfg, keys())
    }

    fn lb(state: &State) -> Arc<LbState> {
        Arc::clone(state.load_balancers().get("x").unwrap())
    }

    const T0: Now = Now {
        ms: 1_000,
        unix_secs: 1_700_000_000,
    };

    fn at(ms: u64) -> Now {
        Now {
            ms,
            unix_secs: T0.unix_secs + ms / 1000,
        }
    }

    fn route(state: &State, cookies: &[&str], now: Now) -> Routed {
        let lb = lb(state);
        let ip = Some("10.0.0.7".parse().unwrap());
        let mut dice = 0.0;
        let mut rand = || {
            dice = (dice + 0.37) % 1.0;
            dice
        };
        Sticky(state)
            .route(&lb, cookies.iter().copied(), None, ip, now, &mut rand)
            .expect("something is usable")
    }

    fn pin_to(state: &State, pool: &str, endpoint: &str, expires: u64) -> String {
        pin_with_nonce(state, pool, endpoint, expires, rand::random())
    }

    /// As [`pin_to`] with a given nonce (for tests that must not depend on chance).
    fn pin_with_nonce(
        state: &State,
        pool: &str,
        endpoint: &str,
        expires: u64,
        nonce: u64,
    ) -> String {
        let id = crate::state::endpoint_id(pool, endpoint);
        assert!(state.endpoint_by_id(id).is_some());
        keys().encode(&Pin {
            lb_id: lb(state).id,
            endpoint_id: id,
            expires,
            nonce: Some(nonce),
        })
    }

    fn name(state: &State, routed: &Routed) -> String {
        state.endpoint(routed.pick).name().to_string()
    }

    #[test]
    fn the_cookie_triad_and_what_is_written_back() {
        let s = state(SessionAffinity::Cookie, Default::default());
        let lb = lb(&s);
        let fresh = route(&s, &[], T0);
        assert_eq!(fresh.decision, Decision::New);
        let line = Sticky(&s)
            .commit(&lb, &fresh, T0)
            .expect("a new session gets a cookie");
        assert!(
            line.starts_with("__cflb=") && line.ends_with("Max-Age=82800; HttpOnly; SameSite=Lax")
        );

        let cookie = pin_to(&s, "p", "p-2", T0.unix_secs + 60);
        let hit = route(&s, &[&cookie], T0);
        assert_eq!(
            (hit.decision, name(&s, &hit)),
            (Decision::Hit, "p-2".into())
        );
        assert_eq!(
            Sticky(&s).commit(&lb, &hit, T0),
            None,
            "a hit sets no cookie"
        );

        for bad in ["", "garbage", &cookie[..30]] {
            assert_eq!(route(&s, &[bad], T0).decision, Decision::Invalid);
        }
    }

    #[test]
    fn expired_foreign_and_unknown_pins() {
        let s = state(SessionAffinity::Cookie, Default::default());
        let expired = pin_to(&s, "p", "p-1", T0.unix_secs);
        assert_eq!(route(&s, &[&expired], T0).decision, Decision::Expired);
        let foreign = keys().encode(&Pin {
            lb_id: crate::state::lb_id("other.example"),
            endpoint_id: crate::state::endpoint_id("p", "p-1"),
            expires: T0.unix_secs + 60,
            nonce: Some(1),
        });
        assert_eq!(route(&s, &[&foreign], T0).decision, Decision::Invalid);
        let unknown = keys().encode(&Pin {
            lb_id: lb(&s).id,
            endpoint_id: crate::state::endpoint_id("p", "gone"),
            expires: T0.unix_secs + 60,
            nonce: Some(2),
        });
        assert_eq!(route(&s, &[&unknown], T0).decision, Decision::Invalid);
        // Several __cflb cookies: a usable one wins; else the most telling reason.
        let good = pin_to(&s, "p", "p-0", T0.unix_secs + 60);
        assert_eq!(route(&s, &["junk", &good], T0).decision, Decision::Hit);
        assert_eq!(
            route(&s, &["junk", &expired], T0).decision,
            Decision::Expired
        );
    }

    #[test]
    fn drain_keeps_pinned_sessions_for_the_window_only() {
        let attrs = SessionAffinityAttributes {
            drain_duration: std::time::Duration::from_secs(60),
            ..Default::default()
        };
        let s = state(SessionAffinity::Cookie, attrs);
        let cookie = pin_to(&s, "p", "p-1", T0.unix_secs + 3600);
        let p1 = s
            .endpoint_by_id(crate::state::endpoint_id("p", "p-1"))
            .unwrap();
        crate::changes::test_door::set_endpoint_enabled(&s, p1, false, 1_000);

        let during = route(&s, &[&cookie], at(30_000));
        assert_eq!(
            (during.decision, name(&s, &during)),
            (Decision::Hit, "p-1".into())
        );
        for _ in 0..30 {
            assert_ne!(
                name(&s, &route(&s, &[], at(30_000))),
                "p-1",
                "no new session"
            );
        }
        let after = route(&s, &[&cookie], at(61_000));
        assert_eq!(after.decision, Decision::RepinDrained);
        assert_ne!(name(&s, &after), "p-1");

        // Without a drain, disabling is immediate.
        let s = state(SessionAffinity::Cookie, Default::default());
        crate::changes::test_door::set_endpoint_enabled(&s, p1, false, 1_000);
        assert_eq!(
            route(&s, &[&cookie], at(1_000)).decision,
            Decision::RepinDrained
        );
    }

    #[test]
    fn unhealthy_and_fallback_pins_are_repinned() {
        let s = state(SessionAffinity::Cookie, Default::default());
        let cookie = pin_to(&s, "p", "p-0", T0.unix_secs + 3600);
        set_health(&s, "p", &[false, true, true]);
        assert_eq!(route(&s, &[&cookie], T0).decision, Decision::RepinUnhealthy);

        // A session on the fallback pool stays there while every default pool is
        // down, and moves back once one is healthy again.
        let in_fallback = pin_to(&s, "fb", "fb-0", T0.unix_secs + 3600);
        set_health(&s, "p", &[false, false, false]);
        assert_eq!(route(&s, &[&in_fallback], T0).decision, Decision::Hit);
        set_health(&s, "p", &[true, true, true]);
        let back = route(&s, &[&in_fallback], T0);
        assert_eq!(back.decision, Decision::RepinUnhealthy);
        assert_eq!(s.pools[back.pick.pool()].name(), "p");
    }

    #[test]
    fn table_sessions_are_remembered_until_idle() {
        let s = state(SessionAffinity::SourceIp, Default::default());
        let lb = lb(&s);
        let first = route(&s, &[], T0);
        assert_eq!(first.decision, Decision::New);
        assert_eq!(
            Sticky(&s).commit(&lb, &first, T0),
            None,
            "source_ip sets no cookie"
        );
        let again = route(&s, &[], at(1_000 + 1_799_000));
        assert_eq!((again.decision, again.pick), (Decision::Hit, first.pick));
        // Idle for the whole TTL (1800 s) since that hit: expired.
        let idle = route(&s, &[], at(1_000 + 1_799_000 + 1_800_000));
        assert_eq!(idle.decision, Decision::Expired);
    }

    #[test]
    fn zero_downtime_failover_modes() {
        for (mode, expected) in [
            (ZeroDowntimeFailover::None, None),
            (
                ZeroDowntimeFailover::Temporary,
                Some(Decision::FailoverTemporary),
            ),
            (ZeroDowntimeFailover::Sticky, Some(Decision::FailoverSticky)),
        ] {
            let attrs = SessionAffinityAttributes {
                zero_downtime_failover: mode,
                ..Default::default()
            };
            let s = state(SessionAffinity::Cookie, attrs);
            let lb = lb(&s);
            let cookie = pin_to(&s, "p", "p-0", T0.unix_secs + 3600);
            let hit = route(&s, &[&cookie], T0);
            let retry = Sticky(&s).connect_failed(&lb, &hit, None, &mut || 0.5);
            assert_eq!(retry.map(|r| r.1), expected, "{mode:?}");
            if let Some((pick, _)) = retry {
                assert_ne!(pick, hit.pick, "{mode:?}: another endpoint");
            }
            // Without a pin, a refused connection is always retried once.
            let fresh = route(&s, &[], T0);
            let retry = Sticky(&s)
                .connect_failed(&lb, &fresh, None, &mut || 0.5)
                .unwrap();
            assert_eq!(retry.1, Decision::New);
            assert_ne!(retry.0, fresh.pick);
        }
    }

    #[test]
    fn sticky_failover_repins_with_a_cookie_and_temporary_does_not() {
        let attrs = SessionAffinityAttributes {
            zero_downtime_failover: ZeroDowntimeFailover::Sticky,
            ..Default::default()
        };
        let s = state(SessionAffinity::Cookie, attrs);
        let lb = lb(&s);
        let cookie = pin_to(&s, "p", "p-0", T0.unix_secs + 3600);
        let hit = route(&s, &[&cookie], T0);
        let (pick, decision) = Sticky(&s)
            .connect_failed(&lb, &hit, None, &mut || 0.5)
            .unwrap();
        let moved = Routed {
            pick,
            decision,
            ..hit
        };
        assert!(Sticky(&s).commit(&lb, &moved, T0).is_some());
        let temporary = Routed {
            decision: Decision::FailoverTemporary,
            ..moved
        };
        assert_eq!(Sticky(&s).commit(&lb, &temporary, T0), None);
    }

    #[test]
    fn first_picks_and_failover_targets_agree_across_instances() {
        let one = state(SessionAffinity::IpCookie, Default::default());
        let two = state(SessionAffinity::IpCookie, Default::default());
        let mut seen = std::collections::HashSet::new();
        for last in 1..=40u8 {
            let ip: IpAddr = format!("192.0.2.{last}").parse().unwrap();
            let pick = |s: &State, seed: f64| {
                let mut r = || seed;
                Sticky(s)
                    .route(&lb(s), std::iter::empty(), None, Some(ip), T0, &mut r)
                    .unwrap()
            };
            let (a, b) = (pick(&one, 0.1), pick(&two, 0.9));
            assert_eq!(a.pick, b.pick, "{ip}: first pick, whatever the dice");
            let fa = Sticky(&one).connect_failed(&lb(&one), &a, Some(ip), &mut || 0.2);
            let fb = Sticky(&two).connect_failed(&lb(&two), &b, Some(ip), &mut || 0.8);
            assert_eq!(fa, fb, "{ip}: failover target");
            seen.insert(a.pick);
        }
        assert_eq!(seen.len(), 3, "40 clients spread over the 3 endpoints");
    }

    /// The nonce of the `__cflb` a `Set-Cookie` line carries.
    fn nonce_of(state: &State, line: &str) -> Option<u64> {
        let value = line.strip_prefix("__cflb=")?.split(';').next()?;
        match state.keys.decode(value, T0.unix_secs) {
            Decoded::Valid(pin) => pin.nonce,
            _ => None,
        }
    }

    #[test]
    fn new_cookies_carry_a_fresh_nonce_and_repins_keep_it() {
        let s = state(SessionAffinity::Cookie, Default::default());
        let lb = lb(&s);
        let a = Sticky(&s).commit(&lb, &route(&s, &[], T0), T0).unwrap();
        let b = Sticky(&s).commit(&lb, &route(&s, &[], T0), T0).unwrap();
        let (na, nb) = (nonce_of(&s, &a).unwrap(), nonce_of(&s, &b).unwrap());
        assert_ne!(na, nb, "every new session has its own nonce");
        // Its endpoint goes down: re-pinned, same nonce.
        let value = a["__cflb=".len()..].split(';').next().unwrap().to_string();
        let pinned = route(&s, &[&value], T0);
        let dead = s.endpoint(pinned.pick).name().to_string();
        let mut health = [true; 3];
        health[pinned.pick.endpoint()] = false;
        set_health(&s, "p", &health);
        let moved = route(&s, &[&value], T0);
        assert_eq!(moved.decision, Decision::RepinUnhealthy);
        assert_ne!(name(&s, &moved), dead);
        let line = Sticky(&s).commit(&lb, &moved, T0).unwrap();
        assert_eq!(nonce_of(&s, &line), Some(na));
    }

    #[test]
    fn version_1_cookies_are_honoured_until_they_expire() {
        let s = state(SessionAffinity::Cookie, Default::default());
        let v1 = keys().encode(&Pin {
            lb_id: lb(&s).id,
            endpoint_id: crate::state::endpoint_id("p", "p-1"),
            expires: T0.unix_secs + 60,
            nonce: None,
        });
        assert_eq!(v1.len(), 55);
        let hit = route(&s, &[&v1], T0);
        assert_eq!(
            (hit.decision, name(&s, &hit)),
            (Decision::Hit, "p-1".into())
        );
        let expired = route(&s, &[&v1], at(61_000 + T0.ms));
        assert_eq!(expired.decision, Decision::Expired);
        let line = Sticky(&s).commit(&lb(&s), &expired, T0).unwrap();
        assert!(nonce_of(&s, &line).is_some(), "the new cookie is version 2");
    }

    #[test]
    fn a_dead_endpoints_sessions_spread_by_weight_and_instances_agree() {
        let one = state(SessionAffinity::Cookie, Default::default());
        let two = state(SessionAffinity::Cookie, Default::default());
        // p-0 (weight 1) dies; p-1 has weight 1, p-2 weight 0.5.
        for s in [&one, &two] {
            set_health(s, "p", &[false, true, true]);
            let at = s.find_endpoint("p", "p-2").unwrap();
            crate::changes::test_door::set_endpoint_weight(s, at, 0.5);
        }
        let mut counts = std::collections::HashMap::new();
        // Nonces from a fixed sequence: the shares do not depend on chance.
        for i in 0..3000u64 {
            let nonce = crate::balance::hash::stable_hash(&i.to_be_bytes());
            let stale = pin_with_nonce(&one, "p", "p-0", T0.unix_secs + 3600, nonce);
            let a = route(&one, &[&stale], T0);
            let b = route(&two, &[&stale], T0);
            assert_eq!(a.decision, Decision::RepinUnhealthy);
            assert_eq!(a.pick, b.pick, "every instance re-pins alike");
            *counts.entry(name(&one, &a)).or_insert(0u32) += 1;
        }
        let (p1, p2) = (counts["p-1"] as f64, counts["p-2"] as f64);
        // Shares 2/3 and 1/3: within 10% of each.
        assert!((p1 / 3000.0 - 2.0 / 3.0).abs() < 0.067, "{counts:?}");
        assert!((p2 / 3000.0 - 1.0 / 3.0).abs() < 0.034, "{counts:?}");
        // Failover targets of pinned sessions spread too (not one survivor).
        let attrs = SessionAffinityAttributes {
            zero_downtime_failover: ZeroDowntimeFailover::Temporary,
            ..Default::default()
        };
        let one = state(SessionAffinity::Cookie, attrs);
        let mut targets = std::collections::HashSet::new();
        for _ in 0..200 {
            let c = pin_to(&one, "p", "p-0", T0.unix_secs + 3600);
            let hit = route(&one, &[&c], T0);
            let (pick, _) = Sticky(&one)
                .connect_failed(&lb(&one), &hit, None, &mut || 0.5)
                .unwrap();
            targets.insert(pick);
        }
        assert_eq!(targets.len(), 2, "failovers of p-0 go to p-1 and p-2");
    }

    #[test]
    fn session_shedding_moves_a_hashed_share_of_pins_once() {
        let mut p = pool("p", 2, OriginSteering::Random);
        p.load_shedding.session_percent = 40.0;
        let mut cfg = config(
            vec![p, pool("q", 2, OriginSteering::Random)],
            &["p", "q"],
            None,
        );
        cfg.max_sessions = 10_000;
        let conf = cfg.load_balancers.get_mut("*").unwrap();
        conf.session_affinity = SessionAffinity::Header;
        conf.session_affinity_ttl = std::time::Duration::from_secs(1800);
        let state = State::new(&cfg, keys());
        let lb = lb(&state);
        let mut rand = || 0.5;
        let mut visit = |key: u64| {
            let routed = Sticky(&state)
                .route(&lb, std::iter::empty(), Some(key), None, T0, &mut rand)
                .unwrap();
            Sticky(&state).commit(&lb, &routed, T0);
            (
                state.pools[routed.pick.pool()].name().to_string(),
                routed.decision,
            )
        };
        let n = 2000u64;
        let keys: Vec<u64> = (0..n)
            .map(|i| crate::balance::hash::stable_hash(&i.to_le_bytes()))
            .collect();
        for &k in &keys {
            assert_eq!(visit(k), ("p".to_string(), Decision::New));
        }
        let second: Vec<(String, Decision)> = keys.iter().map(|&k| visit(k)).collect();
        let shed = second
            .iter()
            .filter(|(p, d)| p == "q" && *d == Decision::RepinShed)
            .count();
        let kept = second
            .iter()
            .filter(|(p, d)| p == "p" && *d == Decision::Hit)
            .count();
        assert_eq!(shed + kept, n as usize, "{:?}", &second[..3]);
        let share = shed as f64 / n as f64 * 100.0;
        assert!((share - 40.0).abs() <= 3.0, "{share:.1}% shed");
        // Shed once: the re-pinned sessions now stay on q, the others on p.
        for (&k, (pool, _)) in keys.iter().zip(&second) {
            assert_eq!(visit(k), (pool.clone(), Decision::Hit));
        }
    }
}
