//! Slow start (a pool's `slow_start`): an endpoint that has just become
//! usable takes a linearly growing share of new sessions over the window.
//! Pure and deterministic: whether a session is admitted is a function of
//! the endpoint, the session's stable hash and the time since the endpoint
//! became usable, so every replica admits the same sessions, and a session
//! admitted at time t is admitted at every later time.

use super::hash::{finalise, stable_hash_parts};

/// The share (0..=1) of new sessions an endpoint admits `elapsed_ms` after
/// it became usable, for a window of `window_ms` (0: no slow start).
pub fn share(elapsed_ms: u64, window_ms: u64) -> f64 {
    if window_ms == 0 || elapsed_ms >= window_ms {
        1.0
    } else {
        elapsed_ms as f64 / window_ms as f64
    }
}

/// Whether endpoint `endpoint_id` admits the session of `key`.
pub fn admits(endpoint_id: u64, key: u64, elapsed_ms: u64, window_ms: u64) -> bool {
    let share = share(elapsed_ms, window_ms);
    if share >= 1.0 {
        return true;
    }
    let seed = stable_hash_parts(&[b"slow_start", &endpoint_id.to_le_bytes()]);
    let draw = (finalise(seed ^ key) >> 11) as f64 / (1u64 << 53) as f64;
    draw < share
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash::stable_hash;

    #[test]
    fn the_admitted_share_follows_the_window() {
        let window = 30_000;
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| stable_hash(&i.to_le_bytes()))
            .collect();
        for (at, want) in [(7_500, 0.25), (15_000, 0.5), (22_500, 0.75)] {
            let got = keys.iter().filter(|&&k| admits(42, k, at, window)).count() as f64
                / keys.len() as f64;
            assert!((got - want).abs() <= 0.02, "at {at} ms: {got}");
        }
        assert!(keys.iter().all(|&k| admits(42, k, window, window)));
        assert!(keys.iter().all(|&k| admits(42, k, 0, 0)));
        assert!(!keys.iter().any(|&k| admits(42, k, 0, window)));
    }

    #[test]
    fn an_admitted_session_stays_admitted() {
        for k in 0..1000u64 {
            let key = stable_hash(&k.to_le_bytes());
            let first = (0..=30).find(|s| admits(7, key, s * 1000, 30_000));
            if let Some(first) = first {
                assert!((first..=30).all(|s| admits(7, key, s * 1000, 30_000)));
            }
        }
    }
}
