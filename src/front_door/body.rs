//! The request body's pace: `client_limits.body_timeout` and
//! `client_limits.min_body_rate`, decided here as plain arithmetic on bytes
//! and time (the proxy reads the clock and applies the verdict).
//!
//! `body_timeout` bounds each wait for body bytes (Pingora's read timeout on
//! the client's body, set per request), as NGINX's `client_body_timeout`.
//! `min_body_rate` bounds the average: once `header_timeout` has passed since
//! the body began (a grace period, as Apache's `mod_reqtimeout` gives one),
//! a body that has averaged fewer bytes a second is cut off — a client
//! trickling a byte every few seconds never trips a per-read timeout, and
//! held a connection (and an upstream one) forever.

use std::time::Duration;

/// What the proxy keeps of one request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Bytes a second the body must average after `grace`; 0: no minimum.
    pub min_rate: u64,
    /// How long the body may take before its rate is judged.
    pub grace: Duration,
    /// Body bytes received so far.
    pub received: u64,
}

impl BodyPace {
    pub fn new(min_rate: u64, grace: Duration) -> BodyPace {
        BodyPace {
            min_rate,
            grace,
            received: 0,
        }
    }

    /// `bytes` more arrived, `elapsed` after the body began: whether the
    /// body is now too slow (the request is then refused with `408`).
    pub fn too_slow(&mut self, bytes: usize, elapsed: Duration) -> bool {
        self.received = self.received.saturating_add(bytes as u64);
        if self.min_rate == 0 || elapsed <= self.grace {
            return false;
        }
        // received / elapsed < min_rate, without floating point.
        u128::from(self.received) * 1_000_000 < u128::from(self.min_rate) * elapsed.as_micros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_body_within_the_grace_period_is_never_too_slow() {
        let mut pace = BodyPace::new(500, 10 * S);
        assert!(!pace.too_slow(1, 9 * S));
        assert!(!pace.too_slow(0, 10 * S));
    }

    #[test]
    fn after_the_grace_period_the_average_must_reach_the_minimum() {
        let mut pace = BodyPace::new(500, 10 * S);
        assert!(!pace.too_slow(5_000, 10 * S));
        assert!(!pace.too_slow(500, 11 * S), "exactly 500 bytes a second");
        assert!(pace.too_slow(1, 12 * S), "5,501 bytes in 12 s");
        // A byte a second, the trickle that held connections forever.
        let mut trickle = BodyPace::new(500, 10 * S);
        let cut = (1..=60u32).find(|&t| trickle.too_slow(1, t * S));
        assert_eq!(cut, Some(11));
    }

    #[test]
    fn no_minimum_means_no_verdict() {
        let mut pace = BodyPace::new(0, 10 * S);
        assert!(!pace.too_slow(1, 3600 * S));
    }
}
