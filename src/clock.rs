//! The two clocks Tether reads, in one place so that everything else takes
//! time as a plain number: a monotonic one for drains and idle sessions, and
//! the wall clock for cookie expiry (unix seconds; a cookie outlives the
//! process that set it). Monotonic time starts at [`MONOTONIC_BASE`], not 0,
//! so that an event from before this process (a drain restored from the
//! state file) still has a positive timestamp.
//!
//! The request path reads the monotonic clock once where a request starts
//! and derives everything else from that reading: the wall time of an
//! instant is the monotonic reading plus the wall clock's offset, which is
//! read again at most once a second ([`unix_ms_at`]). A step of the system
//! clock (NTP) is followed within a second.

// The one place allowed to read the clocks (clippy.toml's disallowed-methods).
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
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

/// How long a reading of the wall clock's offset serves [`unix_ms_at`].
const WALL_OFFSET_MAX_AGE_MS: u64 = 1_000;

/// The instant process-wide monotonic milliseconds count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds from [`epoch`] to `at` (0 before it).
fn since_epoch_ms(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

/// The wall clock minus the monotonic one (unix ms at [`epoch`]), and when
/// (ms since the epoch, +1 so that 0 means never) it was read.
static WALL_OFFSET_MS: AtomicU64 = AtomicU64::new(0);
static WALL_OFFSET_READ_AT: AtomicU64 = AtomicU64::new(0);

/// The wall-clock instant (unix ms) of a monotonic reading: the reading plus
/// the clocks' offset, which is re-read when it is a second old. Costs no
/// clock read but that once a second, so the request path can take its one
/// reading and derive the wall time from it.
pub fn unix_ms_at(at: Instant) -> u64 {
    let at_ms = since_epoch_ms(at);
    let read_at = WALL_OFFSET_READ_AT.load(Relaxed);
    let offset = if read_at == 0 || at_ms.saturating_add(1) >= read_at + WALL_OFFSET_MAX_AGE_MS {
        let now_ms = since_epoch_ms(Instant::now());
        let offset = unix_ms().saturating_sub(now_ms);
        WALL_OFFSET_MS.store(offset, Relaxed);
        WALL_OFFSET_READ_AT.store(now_ms + 1, Relaxed);
        offset
    } else {
        WALL_OFFSET_MS.load(Relaxed)
    };
    offset.saturating_add(at_ms)
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

    /// Both clocks now, from one reading.
    pub fn now(&self) -> Now {
        self.now_at(Instant::now())
    }

    /// Both clocks at `at`, a reading already taken (a request's start):
    /// no clock is read (but the wall clock's offset once a second).
    pub fn now_at(&self, at: Instant) -> Now {
        Now {
            ms: self.ms_at(at),
            unix_secs: unix_ms_at(at) / 1000,
        }
    }

    /// Monotonic milliseconds: [`MONOTONIC_BASE`] when this clock was made.
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// This clock's milliseconds at `at`.
    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_millis())
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
        assert!(clock.now().unix_secs > 1_700_000_000);
    }

    #[test]
    fn the_derived_wall_clock_agrees_with_the_wall_clock() {
        let clock = Clock::new();
        let start = stopwatch();
        let (derived, read) = (unix_ms_at(start), unix_ms());
        assert!(derived.abs_diff(read) <= 5, "{derived} vs {read}");
        let later = start + std::time::Duration::from_millis(250);
        assert_eq!(unix_ms_at(later) - unix_ms_at(start), 250);
        let now = clock.now_at(start);
        assert_eq!(now.unix_secs, unix_ms_at(start) / 1000);
        assert_eq!(clock.now_at(later).ms - now.ms, 250);
        // An instant a second past the last read of the offset reads it again.
        let much_later = start + std::time::Duration::from_secs(5);
        assert!(unix_ms_at(much_later).abs_diff(read + 5_000) <= 5);
    }
}
