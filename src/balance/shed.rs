//! Load shedding (Cloudflare's `load_shedding` on a pool): whether a request
//! or a session is shed from a pool to the next one in the load balancer's
//! order. Pure: the draw comes in, or is the stable hash of a key, so every
//! replica sheds the same sessions.

use super::hash::{finalise, stable_hash_parts};

/// The seed of a pool's hash draws: pools shed independent sets of keys.
pub fn pool_seed(pool: &str) -> u64 {
    stable_hash_parts(&[b"load_shedding", pool.as_bytes()])
}

/// A uniform draw in `[0, 1)` from `key` (a client-IP or session hash) for
/// the pool of `seed`: the same in every process and build.
pub fn hash_draw(seed: u64, key: u64) -> f64 {
    (finalise(seed ^ key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a draw in `[0, 1)` falls in the shed `percent` (0..=100).
pub fn sheds(percent: f64, draw: f64) -> bool {
    percent > 0.0 && draw * 100.0 < percent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash::stable_hash;

    fn share(percent: f64, pool: &str, n: u64) -> f64 {
        let seed = pool_seed(pool);
        let shed = (0..n)
            .filter(|i| sheds(percent, hash_draw(seed, stable_hash(&i.to_le_bytes()))))
            .count();
        shed as f64 / n as f64
    }

    #[test]
    fn hashed_shedding_moves_the_configured_share() {
        // 10,000 sessions: within ±2 percentage points of the setting.
        for percent in [0.0, 10.0, 25.0, 50.0, 90.0, 100.0] {
            let got = share(percent, "primary", 10_000) * 100.0;
            println!("load shedding {percent}% (hash), 10,000 sessions: {got:.2}% shed");
            assert!(
                (got - percent).abs() <= 2.0,
                "{percent}% configured, {got:.2}% shed"
            );
        }
    }

    #[test]
    fn the_same_keys_are_shed_everywhere_and_pools_differ() {
        let (a, b) = (pool_seed("primary"), pool_seed("secondary"));
        assert_eq!(a, pool_seed("primary"));
        let key = stable_hash(b"session-7");
        assert_eq!(hash_draw(a, key), hash_draw(a, key));
        assert_ne!(hash_draw(a, key), hash_draw(b, key));
        assert!(!sheds(0.0, 0.0));
        assert!(sheds(100.0, 0.999_999));
        assert!(sheds(10.0, 0.099) && !sheds(10.0, 0.1));
    }
}
