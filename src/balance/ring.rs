//! Consistent, weighted hashing of a session key onto a pool's endpoints.
//!
//! Endpoints are placed on the ring by NAME (and the pool's name), never by
//! address, so two Tether processes with the same configuration build the same
//! ring, and an endpoint keeps its sessions when its address changes.
//!
//! Each endpoint gets `round(weight * POINTS_PER_UNIT)` points (at least one
//! when `weight > 0`, none when `weight == 0`). Point `i` of endpoint `e` sits at
//! `stable_hash_parts(&[pool, e.name, &(i as u32).to_le_bytes()])`. A key maps to
//! the first point at or after it, wrapping, whose endpoint is usable. Hence
//! (SPEC 7): removing one endpoint of N moves only the keys that were on it
//! (about 1/N), adding one moves about 1/(N+1), and only onto the new one.

use super::hash::stable_hash_parts;

/// Ring points given to an endpoint of weight 1.0.
pub const POINTS_PER_UNIT: f64 = 160.0;

/// How many rejected endpoints a single walk remembers to avoid re-asking.
const REJECT_MEMORY: usize = 8;

/// A consistent-hash ring over one pool's endpoints. Immutable once built;
/// rebuild it when the pool's endpoints or weights change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRing {
    /// (position, endpoint index), sorted by position then endpoint index.
    points: Vec<(u64, u32)>,
}

/// Ring points for one endpoint's weight: `round(weight * POINTS_PER_UNIT)`,
/// at least 1 when `weight > 0`, 0 for `weight <= 0` or NaN. Weights above 1.0
/// are treated as 1.0 (the configuration never allows them).
fn points_for(weight: f64) -> u32 {
    if weight.is_nan() || weight <= 0.0 {
        return 0;
    }
    ((weight.min(1.0) * POINTS_PER_UNIT).round() as u32).max(1)
}

impl HashRing {
    /// Build the ring of pool `pool` from its endpoints `(name, weight)` in
    /// configuration order; [`HashRing::pick`] answers with indexes into that
    /// list.
    pub fn new(pool: &str, endpoints: &[(&str, f64)]) -> HashRing {
        let total: usize = endpoints.iter().map(|e| points_for(e.1) as usize).sum();
        let mut points = Vec::with_capacity(total);
        for (index, (name, weight)) in endpoints.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 endpoints");
            for i in 0..points_for(*weight) {
                let pos = stable_hash_parts(&[pool.as_bytes(), name.as_bytes(), &i.to_le_bytes()]);
                points.push((pos, index));
            }
        }
        // Sorting the whole tuple breaks position ties by endpoint index.
        points.sort_unstable();
        HashRing { points }
    }

    /// The endpoint for `key`: the first point at or after `key` (wrapping past
    /// the top of the ring) whose endpoint satisfies `usable`. Each point is
    /// visited at most once; `None` when the ring is empty or no endpoint on it
    /// is usable. Does not allocate.
    pub fn pick(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        let start = self.points.partition_point(|&(pos, _)| pos < key);
        let mut rejected = [0u32; REJECT_MEMORY];
        let mut n_rejected = 0;
        for step in 0..n {
            let idx = self.points[(start + step) % n].1;
            if rejected[..n_rejected].contains(&idx) {
                continue;
            }
            if usable(idx as usize) {
                return Some(idx as usize);
            }
            if n_rejected < REJECT_MEMORY {
                rejected[n_rejected] = idx;
                n_rejected += 1;
            }
        }
        None
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// `true` when no endpoint has a positive weight.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash::stable_hash;
    use std::cell::Cell;

    const KEYS: u64 = 100_000;

    fn key(i: u64) -> u64 {
        stable_hash(&i.to_le_bytes())
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("web-{i}")).collect()
    }

    fn ring_of(names: &[String]) -> HashRing {
        let eps: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        HashRing::new("pool-a", &eps)
    }

    /// Name chosen for each of the test keys.
    fn assignment<'a>(ring: &HashRing, names: &'a [String]) -> Vec<&'a str> {
        (0..KEYS)
            .map(|i| names[ring.pick(key(i), |_| true).unwrap()].as_str())
            .collect()
    }

    #[test]
    fn deterministic_across_builds() {
        let n = names(5);
        let (a, b) = (ring_of(&n), ring_of(&n));
        assert_eq!(a, b);
        assert_eq!(a.len(), 5 * 160);
        for i in 0..1000 {
            assert_eq!(a.pick(key(i), |_| true), b.pick(key(i), |_| true));
        }
        // The pool's name is part of each point.
        let eps = [("web-0", 1.0), ("web-1", 1.0)];
        assert_ne!(HashRing::new("x", &eps), HashRing::new("y", &eps));
    }

    #[test]
    fn removing_one_of_ten_moves_only_its_keys() {
        let all = names(10);
        let fewer: Vec<String> = all.iter().filter(|n| *n != "web-3").cloned().collect();
        let before = assignment(&ring_of(&all), &all);
        let after = assignment(&ring_of(&fewer), &fewer);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b == "web-3" {
                moved += 1;
                assert_ne!(*a, "web-3");
            } else {
                assert_eq!(b, a, "a key not on the removed endpoint moved");
            }
        }
        let frac = moved as f64 / KEYS as f64;
        println!("remove 1 of 10: moved fraction {frac:.4} (ideal 0.1000)");
        assert!((frac - 0.1).abs() <= 0.03, "{frac}");
    }

    #[test]
    fn adding_one_to_ten_moves_about_one_eleventh_onto_it() {
        let ten = names(10);
        let eleven = names(11);
        let before = assignment(&ring_of(&ten), &ten);
        let after = assignment(&ring_of(&eleven), &eleven);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(*a, "web-10", "a key moved to an old endpoint");
            }
        }
        let frac = moved as f64 / KEYS as f64;
        println!(
            "add 1 to 10: moved fraction {frac:.4} (ideal {:.4})",
            1.0 / 11.0
        );
        assert!((frac - 1.0 / 11.0).abs() <= 0.03, "{frac}");
    }

    #[test]
    fn unusable_behaves_exactly_like_removal() {
        let all = names(10);
        let fewer: Vec<String> = all.iter().filter(|n| *n != "web-3").cloned().collect();
        let full = ring_of(&all);
        let removed = ring_of(&fewer);
        for i in 0..KEYS {
            let a = full.pick(key(i), |e| e != 3).unwrap();
            let b = removed.pick(key(i), |_| true).unwrap();
            assert_eq!(all[a], fewer[b]);
        }
    }

    #[test]
    fn weights_shape_the_share() {
        let ring = HashRing::new("p", &[("big", 1.0), ("small", 0.5)]);
        assert_eq!(ring.len(), 160 + 80);
        let big = (0..KEYS)
            .filter(|&i| ring.pick(key(i), |_| true) == Some(0))
            .count();
        let frac = big as f64 / KEYS as f64;
        println!("weights 1.0/0.5: share of the heavier {frac:.4} (ideal 0.6667)");
        assert!((frac - 2.0 / 3.0).abs() <= 0.05, "{frac}");
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let ring = HashRing::new("p", &[("a", 1.0), ("off", 0.0), ("c", 0.3)]);
        assert_eq!(ring.len(), 160 + 48);
        for i in 0..KEYS / 10 {
            assert_ne!(ring.pick(key(i), |_| true), Some(1));
        }
        assert!(HashRing::new("p", &[("off", 0.0), ("nan", f64::NAN)]).is_empty());
        // A tiny positive weight still gets a point.
        assert_eq!(HashRing::new("p", &[("tiny", 0.0001)]).len(), 1);
    }

    #[test]
    fn spread_over_three_equal_endpoints() {
        let n = names(3);
        let ring = ring_of(&n);
        let mut counts = [0u64; 3];
        for i in 0..KEYS {
            counts[ring.pick(key(i), |_| true).unwrap()] += 1;
        }
        for c in counts {
            let frac = c as f64 / KEYS as f64;
            println!("3 equal endpoints: share {frac:.4} (ideal 0.3333)");
            // ±5 percentage points: with 160 points per endpoint an endpoint's
            // share has a relative standard deviation of about 1/sqrt(160) ≈ 8%.
            assert!((frac - 1.0 / 3.0).abs() <= 0.05, "{counts:?}");
        }
    }

    #[test]
    fn empty_or_nothing_usable_is_none() {
        assert_eq!(HashRing::new("p", &[]).pick(42, |_| true), None);
        let ring = ring_of(&names(4));
        assert_eq!(ring.pick(42, |_| false), None);
        assert_eq!(ring.pick(u64::MAX, |e| e == 2), Some(2));
        assert_eq!(ring.pick(0, |e| e == 1), Some(1));
    }

    #[test]
    fn walk_is_bounded_and_asks_each_endpoint_once() {
        let ring = ring_of(&names(6));
        let calls = Cell::new(0);
        let got = ring.pick(7, |_| {
            calls.set(calls.get() + 1);
            false
        });
        assert_eq!(got, None);
        assert_eq!(calls.get(), 6);
    }
}
