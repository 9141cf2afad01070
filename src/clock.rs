//! The two clocks Tether reads, in one place so that everything else takes
//! time as a plain number: a monotonic one for drains and idle sessions, and
//! the wall clock for cookie expiry (unix seconds; a cookie outlives the
//! process that set it). Monotonic time starts at [`MONOTONIC_BASE`], not 0,
//! so that an event from before this process (a drain restored from the
//! state file) still has a positive timestamp.

// The one place allowed to read the clocks (clippy.toml's disallowed-methods).
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One reading of both clocks, taken once per request and passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (drains, idle sessions).
    pub ms: u64,
    /// Unix seconds (cookie expiry).
    pub unix_secs: u64,
}

/// Monotonic milliseconds at process start: about 35 years, far more than any
/// drain or idle TTL reaches back.
pub const MONOTONIC_BASE: u64 = 1 << 40;

/// A reading of the monotonic clock, to measure how long something takes
/// (`.elapsed()`): request and upstream times, probe round trips.
pub fn stopwatch() -> Instant {
    Instant::now()
}

/// Tokio's monotonic clock, which tests can pause: for timing inside
/// background tasks tested under `start_paused` (probe round trips).
pub fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Wall-clock milliseconds since the unix epoch (0 before it): when a
/// probe ran, for the admin API.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            ms: self.now_ms(),
            unix_secs: self.unix_secs(),
        }
    }

    /// Monotonic milliseconds: [`MONOTONIC_BASE`] when this clock was made.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(MONOTONIC_BASE)
    }

    /// The monotonic ms of a wall-clock instant (unix ms), e.g. a drain's
    /// start told by a cluster peer: both clocks read now, the difference
    /// carried over (saturating at 1, never before this clock's scale).
    pub fn monotonic_at_unix_ms(&self, unix_ms: u64) -> u64 {
        monotonic_at(self.now_ms(), self::unix_ms(), unix_ms)
    }

    /// The wall-clock instant (unix ms) of a monotonic reading of this clock.
    pub fn unix_ms_at_monotonic(&self, ms: u64) -> u64 {
        monotonic_at(self::unix_ms(), self.now_ms(), ms)
    }

    /// Seconds since the unix epoch (0 if the system clock is before it).
    pub fn unix_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// `then` on clock B, given that clock A reads `now_a` while clock B reads
/// `now_b`: the same instant on clock A (at least 1).
fn monotonic_at(now_a: u64, now_b: u64, then: u64) -> u64 {
    if then <= now_b {
        now_a.saturating_sub(now_b - then).max(1)
    } else {
        now_a.saturating_add(then - now_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_carry_over_between_the_clocks() {
        assert_eq!(
            monotonic_at(5_000, 1_700_000_000_000, 1_699_999_999_000),
            4_000
        );
        assert_eq!(
            monotonic_at(5_000, 1_700_000_000_000, 1_700_000_000_250),
            5_250
        );
        assert_eq!(monotonic_at(5_000, 1_700_000_000_000, 0), 1);
        let clock = Clock::new();
        let unix = unix_ms() - 30_000;
        let mono = clock.monotonic_at_unix_ms(unix);
        let back = clock.unix_ms_at_monotonic(mono);
        assert!(back.abs_diff(unix) <= 2, "{unix} -> {mono} -> {back}");
        assert!(clock.now_ms() - mono >= 29_990);
    }

    #[test]
    fn monotonic_time_starts_at_the_base_and_moves_forward() {
        let clock = Clock::new();
        let a = clock.now_ms();
        assert!(a >= MONOTONIC_BASE);
        assert!(clock.now_ms() >= a);
        assert!(clock.unix_secs() > 1_700_000_000);
    }
}
