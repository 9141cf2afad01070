//! The sticky selector (SPEC 4): for every request — never once per
//! connection — read the session's pin, honour it while its endpoint is
//! usable for existing sessions, otherwise choose and re-pin; on a refused
//! connection apply `zero_downtime_failover`; after the response say what to
//! write back (a `Set-Cookie`, a table entry). Choices of endpoints are
//! delegated to [`crate::select`]; the cookie codec, session keys, table and
//! drain timeline are the pure pieces of [`crate::affinity`].

use std::net::IpAddr;

use crate::affinity::cookie::{Decoded, Pin};
use crate::affinity::cookie_header::set_cookie_line;
use crate::affinity::drain::drain_state;
use crate::affinity::table::{Lookup, TablePin};
use crate::balance::hash::stable_hash;
use crate::config::{SessionAffinity, ZeroDowntimeFailover};
use crate::request::client_key;
use crate::select::Facts;
use crate::state::{LbState, Pick, State};

/// How a request's endpoint was decided; logged, counted and (optionally)
/// sent back in `X-Tether-Decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// No affinity for this request (off, or `header` without the headers).
    None,
    /// No pin: chosen and pinned.
    New,
    /// The pin could not be read: not ours, tampered, another load balancer's,
    /// or naming an endpoint this configuration does not have.
    Invalid,
    /// The pin's time is up.
    Expired,
    /// The pinned endpoint is unhealthy, its pool disabled, or it sits in the
    /// fallback pool while a default pool is healthy again.
    RepinUnhealthy,
    /// The pinned endpoint was disabled and its drain is over.
    RepinDrained,
    /// The pin was honoured.
    Hit,
    /// The pinned endpoint refused the connection; served elsewhere, pin kept.
    FailoverTemporary,
    /// The pinned endpoint refused the connection; served elsewhere and re-pinned.
    FailoverSticky,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::None => "none",
            Decision::New => "new",
            Decision::Invalid => "invalid",
            Decision::Expired => "expired",
            Decision::RepinUnhealthy => "repin_unhealthy",
            Decision::RepinDrained => "repin_drained",
            Decision::Hit => "hit",
            Decision::FailoverTemporary => "failover_temporary",
            Decision::FailoverSticky => "failover_sticky",
        }
    }

    /// The response pins the session anew (a cookie, a table entry).
    pub fn pins(self) -> bool {
        matches!(
            self,
            Decision::New
                | Decision::Invalid
                | Decision::Expired
                | Decision::RepinUnhealthy
                | Decision::RepinDrained
                | Decision::FailoverSticky
        )
    }
}

/// Where a request's session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// No affinity for this request.
    None,
    /// `cookie` / `ip_cookie`. `key` is the session's stable hash, used to
    /// choose a failover target: the hash of the cookie value when one was
    /// honoured, else of the client IP.
    Cookie { key: u64 },
    /// `header` / `source_ip`: the session-table key.
    Table { key: u64 },
}

impl Session {
    fn key(self) -> Option<u64> {
        match self {
            Session::None => None,
            Session::Cookie { key } | Session::Table { key } => Some(key),
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

impl State {
    fn pin_status(&self, lb: &LbState, pick: Pick, now_ms: u64) -> PinStatus {
        if !lb.is_default_pool(pick.pool) && lb.fallback_pool != Some(pick.pool) {
            return PinStatus::Foreign;
        }
        let endpoint = self.endpoint(pick);
        if !drain_state(endpoint.disabled_since(), lb.drain_ms, now_ms).keeps_sessions() {
            return PinStatus::Drained;
        }
        if !self.pools[pick.pool].enabled() || !endpoint.healthy() {
            return PinStatus::Unhealthy;
        }
        if lb.is_fallback_only(pick.pool)
            && lb.default_pools.iter().any(|&p| self.pool_is_healthy(p))
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
        rand: &mut dyn FnMut() -> f64,
    ) -> Option<Routed> {
        let now_ms = self.clock.now_ms();
        let client_hash = client_key(client);
        let (decision, session, sticky_key) = match lb.conf.session_affinity {
            SessionAffinity::None => (Decision::None, Session::None, None),
            SessionAffinity::Cookie | SessionAffinity::IpCookie => {
                match self.read_cookies(lb, cflb, now_ms) {
                    Ok(hit) => return Some(hit),
                    Err(decision) => {
                        let by_ip = lb.conf.session_affinity == SessionAffinity::IpCookie;
                        let session = Session::Cookie { key: client_hash };
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
                    Some(key) => match self.read_table(lb, key, now_ms) {
                        Ok(hit) => return Some(hit),
                        Err(decision) => (decision, Session::Table { key }, Some(key)),
                    },
                }
            }
        };
        let mut facts = Facts {
            client_key: client_hash,
            sticky_key,
            rand,
        };
        let pick = self.choose(lb, &mut facts)?;
        Some(Routed {
            pick,
            decision,
            session,
        })
    }

    /// A usable pin among the cookies → `Ok`; else the most telling reason
    /// to pin anew.
    fn read_cookies<'v>(
        &self,
        lb: &LbState,
        cflb: impl Iterator<Item = &'v str>,
        now_ms: u64,
    ) -> Result<Routed, Decision> {
        let now_unix = self.clock.unix_now();
        let mut why = Decision::New;
        for value in cflb {
            let reason = match self.keys.decode(value, now_unix) {
                Decoded::Valid(pin) if pin.lb_id == lb.id => {
                    match self.endpoint_by_id(pin.endpoint_id) {
                        None => Decision::Invalid,
                        Some(pick) => match self.pin_status(lb, pick, now_ms) {
                            PinStatus::Usable => {
                                return Ok(Routed {
                                    pick,
                                    decision: Decision::Hit,
                                    session: Session::Cookie {
                                        key: stable_hash(value.as_bytes()),
                                    },
                                })
                            }
                            PinStatus::Unhealthy => Decision::RepinUnhealthy,
                            PinStatus::Drained => Decision::RepinDrained,
                            PinStatus::Foreign => Decision::Invalid,
                        },
                    }
                }
                Decoded::Expired(pin) if pin.lb_id == lb.id => Decision::Expired,
                Decoded::Valid(_) | Decoded::Expired(_) | Decoded::Invalid => Decision::Invalid,
            };
            why = why.max(reason);
        }
        Err(why)
    }

    fn read_table(&self, lb: &LbState, key: u64, now_ms: u64) -> Result<Routed, Decision> {
        let pinned = match self.sessions.get(key, lb.ttl_ms, now_ms) {
            Lookup::Miss => return Err(Decision::New),
            Lookup::Expired(_) => return Err(Decision::Expired),
            Lookup::Hit(pin) => pin,
        };
        let pick = Pick {
            pool: pinned.pool as usize,
            endpoint: pinned.endpoint as usize,
        };
        let exists = self
            .pools
            .get(pick.pool)
            .is_some_and(|p| pick.endpoint < p.endpoints.len());
        if !exists {
            return Err(Decision::Invalid);
        }
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
        let mut facts = Facts {
            client_key: client_key(client),
            sticky_key: routed.session.key(),
            rand,
        };
        let pick = self.failover(lb, routed.pick, &mut facts)?;
        Some((pick, decision))
    }

    /// After the response: pins the session to where it was served when the
    /// decision says so. Returns the `Set-Cookie` line for cookie sessions.
    pub fn commit(&self, lb: &LbState, routed: &Routed) -> Option<String> {
        if !routed.decision.pins() {
            return None;
        }
        match routed.session {
            Session::None => None,
            Session::Cookie { .. } => {
                let pin = Pin {
                    lb_id: lb.id,
                    endpoint_id: self.endpoint(routed.pick).id,
                    expires: self
                        .clock
                        .unix_now()
                        .saturating_add(lb.conf.session_affinity_ttl),
                };
                Some(set_cookie_line(&self.keys.encode(&pin), &lb.cookie))
            }
            Session::Table { key } => {
                let pin = TablePin {
                    pool: routed.pick.pool as u32,
                    endpoint: routed.pick.endpoint as u32,
                };
                self.sessions.put(key, pin, self.clock.now_ms());
                None
            }
        }
    }
}
