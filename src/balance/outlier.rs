//! Passive health (a pool's `outlier_detection`): one endpoint's state
//! machine over the outcomes of live requests. Pure: the outcome, the time
//! and whether the pool may eject one more endpoint come in; whether (and
//! until when) the endpoint is ejected comes out.
//!
//! - `consecutive_5xx` answers of 500..=599, or `consecutive_gateway_failure`
//!   gateway failures (502, 503, 504 from the endpoint, connect errors,
//!   timeouts), eject the endpoint; any other answer resets both streaks, a
//!   5xx that is not a gateway failure resets the gateway streak. 0 turns a
//!   counter off.
//! - The n-th ejection in a row lasts `base_ejection_time × 2^(n-1)`, at
//!   most [`MAX_EJECTION`] (or `base_ejection_time` when that is longer).
//!   After the endpoint has gone that longest time without an ejection, the
//!   next one counts as the first again.
//! - Outcomes that arrive while the endpoint is ejected (requests that were
//!   already in flight) are ignored.
//! - An endpoint is not ejected when the pool's `max_ejection_percent` of
//!   its endpoints are ejected already; its streak then stays, so the next
//!   failure tries again.

/// The longest ejection (unless `base_ejection_time` is longer): 300 s.
pub const MAX_EJECTION_MS: u64 = 300_000;

/// A pool's `outlier_detection`, ready for use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub base_ejection_ms: u64,
    /// 0..=100.
    pub max_ejection_percent: f64,
}

impl Policy {
    /// How many of `endpoints` may be ejected at once.
    pub fn max_ejected(&self, endpoints: usize) -> usize {
        ((self.max_ejection_percent / 100.0) * endpoints as f64).floor() as usize
    }

    fn longest_ms(&self) -> u64 {
        MAX_EJECTION_MS.max(self.base_ejection_ms)
    }
}

/// What one request's answer says about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer below 500.
    Ok,
    /// 500..=599 other than 502, 503, 504.
    ServerError,
    /// 502, 503, 504 from the endpoint, a connect error or a timeout.
    GatewayFailure,
}

impl Outcome {
    /// The outcome of an answer with this status from the endpoint.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Ok,
        }
    }
}

/// One endpoint's streaks and ejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracker {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    /// Ejections in a row (see the module docs).
    pub ejections: u32,
    /// Monotonic ms the current (or last) ejection ends; 0: never ejected.
    pub ejected_until_ms: u64,
}

impl Tracker {
    pub fn ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until_ms
    }

    /// Records one outcome at `now_ms`; `may_eject`: the pool allows one more
    /// ejected endpoint. Returns when the ejection this outcome starts ends.
    pub fn record(
        &mut self,
        policy: &Policy,
        outcome: Outcome,
        now_ms: u64,
        may_eject: bool,
    ) -> Option<u64> {
        if self.ejected(now_ms) {
            return None;
        }
        if self.ejections > 0 && now_ms >= self.ejected_until_ms.saturating_add(policy.longest_ms())
        {
            self.ejections = 0;
        }
        match outcome {
            Outcome::Ok => {
                self.consecutive_5xx = 0;
                self.consecutive_gateway = 0;
                return None;
            }
            Outcome::ServerError => {
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                self.consecutive_gateway = 0;
            }
            Outcome::GatewayFailure => {
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                self.consecutive_gateway = self.consecutive_gateway.saturating_add(1);
            }
        }
        let tripped = |limit: u32, streak: u32| limit > 0 && streak >= limit;
        let trip = tripped(policy.consecutive_5xx, self.consecutive_5xx)
            || tripped(policy.consecutive_gateway_failure, self.consecutive_gateway);
        if !trip || !may_eject {
            return None;
        }
        self.ejections = self.ejections.saturating_add(1);
        let doubling = 1u64 << (self.ejections - 1).min(20);
        let duration = policy
            .base_ejection_ms
            .saturating_mul(doubling)
            .min(policy.longest_ms());
        self.ejected_until_ms = now_ms.saturating_add(duration);
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
        Some(self.ejected_until_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        consecutive_5xx: 5,
        consecutive_gateway_failure: 3,
        base_ejection_ms: 30_000,
        max_ejection_percent: 50.0,
    };

    fn run(t: &mut Tracker, outcomes: &[Outcome], now_ms: u64) -> Option<u64> {
        outcomes
            .iter()
            .filter_map(|o| t.record(&POLICY, *o, now_ms, true))
            .last()
    }

    use Outcome::{GatewayFailure as Gw, Ok as Fine, ServerError as E500};

    #[test]
    fn streaks_eject_at_their_counts_and_success_resets() {
        let mut t = Tracker::default();
        assert_eq!(run(&mut t, &[E500, E500, E500, E500], 1000), None);
        assert_eq!(run(&mut t, &[E500], 1000), Some(31_000));
        assert!(t.ejected(30_999) && !t.ejected(31_000));

        let mut t = Tracker::default();
        assert_eq!(run(&mut t, &[Gw, Gw, Fine, Gw, Gw], 0), None);
        assert_eq!(run(&mut t, &[Gw], 0), Some(30_000));

        // A 500 breaks the gateway streak but counts as a 5xx.
        let mut t = Tracker::default();
        assert_eq!(run(&mut t, &[Gw, Gw, E500, Gw, Gw], 0), Some(30_000));
        assert_eq!(Outcome::of_status(503), Gw);
        assert_eq!(Outcome::of_status(501), E500);
        assert_eq!(Outcome::of_status(404), Fine);
    }

    #[test]
    fn repeat_ejections_double_up_to_the_cap_and_decay() {
        let mut t = Tracker::default();
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let until = run(&mut t, &[Gw, Gw, Gw], now).unwrap();
            lengths.push((until - now) / 1000);
            // Failures while ejected are ignored.
            assert_eq!(run(&mut t, &[Gw, Gw, Gw], until - 1), None);
            now = until;
        }
        assert_eq!(lengths, [30, 60, 120, 240, 300, 300]);
        // 300 s without an ejection: the next is the first again.
        now += 300_000;
        assert_eq!(run(&mut t, &[Gw, Gw, Gw], now), Some(now + 30_000));
    }

    #[test]
    fn the_pool_limit_holds_the_streak_until_it_may_eject() {
        let mut t = Tracker::default();
        for _ in 0..3 {
            assert_eq!(t.record(&POLICY, Gw, 0, false), None);
        }
        assert_eq!(t.record(&POLICY, Gw, 0, true), Some(30_000));
        assert_eq!(POLICY.max_ejected(2), 1);
        assert_eq!(POLICY.max_ejected(1), 0);
        assert_eq!(POLICY.max_ejected(5), 2);
    }
}
