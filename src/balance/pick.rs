//! Choosing one endpoint among a pool's candidates, by weight.
//!
//! Candidates are indexes into the pool's endpoint list together with their
//! weight (and load). The caller filters for usability and supplies any
//! randomness, so every function here is deterministic and allocation-free.

/// A weight that takes part in a choice: positive and not NaN.
fn counts(weight: f64) -> bool {
    weight > 0.0
}

/// Weighted random choice: candidate `i` wins with probability
/// `weight_i / sum(weights)`. `r` in `[0, 1)` is the caller's random number
/// (values outside are clamped). Weights `<= 0` (and NaN) are excluded; `None`
/// when nothing is left. Two passes over `candidates`: one to sum, one to walk.
pub fn weighted_random(
    candidates: impl Iterator<Item = (usize, f64)> + Clone,
    r: f64,
) -> Option<usize> {
    let total: f64 = candidates
        .clone()
        .filter(|c| counts(c.1))
        .map(|c| c.1)
        .sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let r = if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) };
    let target = r * total;
    let mut acc = 0.0;
    let mut last = None;
    for (index, weight) in candidates.filter(|c| counts(c.1)) {
        acc += weight;
        if target < acc {
            return Some(index);
        }
        last = Some(index);
    }
    // r == 1.0, or rounding left `acc` a hair below `total`.
    last
}

/// The least-loaded candidate relative to its weight.
///
/// Candidates are `(index, weight, load)`; weights `<= 0` (and NaN) are
/// excluded. The score minimised is `(load + 1) / weight`: the `+ 1` counts the
/// request being placed, so with equal loads the heavier weight wins (at zero
/// load too), and with weights 1.0 and 0.5 loads settle about 2:1.
///
/// Among candidates with exactly equal scores the one of rank
/// `tie_break % ties` (in iteration order) wins, so callers passing a counter
/// or a random number spread a burst of simultaneous requests instead of piling
/// it onto the first index. Two passes over `candidates`; no allocation.
pub fn least_loaded(
    candidates: impl Iterator<Item = (usize, f64, u64)> + Clone,
    tie_break: u64,
) -> Option<usize> {
    let score = |weight: f64, load: u64| (load as f64 + 1.0) / weight;
    let mut best = f64::INFINITY;
    let mut ties: u64 = 0;
    for (_, weight, load) in candidates.clone().filter(|c| counts(c.1)) {
        let s = score(weight, load);
        if s < best {
            best = s;
            ties = 1;
        } else if s == best {
            ties += 1;
        }
    }
    if ties == 0 {
        return None;
    }
    let mut rank = tie_break % ties;
    for (index, weight, load) in candidates.filter(|c| counts(c.1)) {
        if score(weight, load) == best {
            if rank == 0 {
                return Some(index);
            }
            rank -= 1;
        }
    }
    None
}

/// Weighted random choice over ALL endpoints in O(log n): `cumulative[i]` is
/// the sum of the weights of endpoints `0..=i`; `r` in `[0, 1)`. Endpoint `i`
/// is returned with probability `weight_i / total`. The caller rejects an
/// unusable result and draws again (rejection sampling keeps the choice
/// exactly weighted among the usable ones), falling back to
/// [`weighted_random`] after a few misses. `None` when the total is 0.
pub fn weighted_by_prefix(cumulative: &[f64], r: f64) -> Option<usize> {
    let total = *cumulative.last()?;
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let target = r.clamp(0.0, 1.0) * total;
    // First index whose cumulative sum exceeds the target: weight-0 entries
    // (equal to their predecessor) can never be it.
    let i = cumulative.partition_point(|&c| c <= target);
    Some(i.min(cumulative.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// r swept over an even grid of `n` points in [0, 1).
    fn grid(n: u32) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| (i as f64 + 0.5) / n as f64)
    }

    #[test]
    fn weighted_random_excludes_and_handles_edges() {
        let none: [(usize, f64); 0] = [];
        assert_eq!(weighted_random(none.iter().copied(), 0.5), None);
        let zero = [(0, 0.0), (1, -1.0), (2, f64::NAN)];
        assert_eq!(weighted_random(zero.iter().copied(), 0.5), None);
        let one = [(7, 0.3)];
        for r in [0.0, 0.5, 0.999_999, 1.0, -3.0, f64::NAN] {
            assert_eq!(weighted_random(one.iter().copied(), r), Some(7));
        }
        let mixed = [(0, 0.0), (1, 1.0), (2, 0.0)];
        for r in grid(100) {
            assert_eq!(weighted_random(mixed.iter().copied(), r), Some(1));
        }
    }

    #[test]
    fn weighted_random_is_deterministic_and_ordered() {
        let c = [(3, 1.0), (5, 1.0)];
        assert_eq!(weighted_random(c.iter().copied(), 0.25), Some(3));
        assert_eq!(weighted_random(c.iter().copied(), 0.75), Some(5));
        assert_eq!(weighted_random(c.iter().copied(), 0.5), Some(5));
        assert_eq!(weighted_random(c.iter().copied(), 1.0), Some(5));
    }

    #[test]
    fn weighted_random_respects_weights() {
        let c = [(0, 1.0), (1, 0.5), (2, 0.0), (3, 0.25)];
        let mut hits = [0u32; 4];
        let n = 10_000;
        for r in grid(n) {
            hits[weighted_random(c.iter().copied(), r).unwrap()] += 1;
        }
        let frac = |i: usize| hits[i] as f64 / n as f64;
        assert!((frac(0) - 1.0 / 1.75).abs() < 0.001, "{hits:?}");
        assert!((frac(1) - 0.5 / 1.75).abs() < 0.001, "{hits:?}");
        assert_eq!(hits[2], 0);
        assert!((frac(3) - 0.25 / 1.75).abs() < 0.001, "{hits:?}");
    }

    #[test]
    fn least_loaded_excludes_and_handles_edges() {
        let none: [(usize, f64, u64); 0] = [];
        assert_eq!(least_loaded(none.iter().copied(), 0), None);
        let zero = [(0, 0.0, 0), (1, -0.5, 0), (2, f64::NAN, 0)];
        assert_eq!(least_loaded(zero.iter().copied(), 3), None);
        let one = [(4, 0.1, 1_000)];
        assert_eq!(least_loaded(one.iter().copied(), 99), Some(4));
    }

    #[test]
    fn least_loaded_prefers_low_load_then_heavy_weight() {
        let c = [(0, 1.0, 5), (1, 1.0, 2), (2, 1.0, 9)];
        assert_eq!(least_loaded(c.iter().copied(), 0), Some(1));
        // Equal load: the heavier weight wins, also at zero load.
        let c = [(0, 0.5, 0), (1, 1.0, 0)];
        assert_eq!(least_loaded(c.iter().copied(), 0), Some(1));
        let c = [(0, 0.5, 4), (1, 1.0, 4)];
        assert_eq!(least_loaded(c.iter().copied(), 1), Some(1));
    }

    #[test]
    fn least_loaded_rotates_among_ties() {
        let c = [(0, 1.0, 3), (1, 1.0, 7), (2, 1.0, 3), (3, 1.0, 3)];
        let picks: Vec<_> = (0..6)
            .map(|t| least_loaded(c.iter().copied(), t).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn least_loaded_settles_about_two_to_one() {
        // Place requests one by one (nothing finishes): loads follow the weights.
        let weights = [1.0, 0.5];
        let mut load = [0u64; 2];
        for t in 0..3_000u64 {
            let c = (0..2).map(|i| (i, weights[i], load[i]));
            load[least_loaded(c, t).unwrap()] += 1;
        }
        let ratio = load[0] as f64 / load[1] as f64;
        assert!((ratio - 2.0).abs() < 0.01, "{load:?}");
    }

    #[test]
    fn prefix_pick_follows_weights_and_skips_zero() {
        // weights 1, 0, 0.5, 0.5 → cumulative 1, 1, 1.5, 2
        let cumulative = [1.0, 1.0, 1.5, 2.0];
        let mut counts = [0usize; 4];
        for k in 0..10_000 {
            let r = k as f64 / 10_000.0;
            counts[weighted_by_prefix(&cumulative, r).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0, "weight 0 is never picked");
        assert_eq!(counts, [5_000, 0, 2_500, 2_500]);
        assert_eq!(weighted_by_prefix(&cumulative, 0.999_999), Some(3));
        assert_eq!(weighted_by_prefix(&cumulative, 1.0), Some(3), "clamped");
        assert_eq!(weighted_by_prefix(&[], 0.5), None);
        assert_eq!(weighted_by_prefix(&[0.0, 0.0], 0.5), None);
    }
}
