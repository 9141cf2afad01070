//! Ordering a load balancer's pools (`steering_policy`, SPEC 3 step 2) and
//! deciding whether a pool is healthy. The proxy walks the returned order and
//! serves from the first healthy pool.

use super::pick::weighted_random;
use crate::config::SteeringPolicy;
use std::cmp::Ordering;
use std::time::Duration;

/// What steering needs to know about one of the load balancer's pools.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolView {
    /// The load balancer's `random_steering` weight for this pool (0.0 ..= 1.0).
    pub weight: f64,
    /// Requests currently in flight to the pool's endpoints.
    pub in_flight: u64,
    /// The monitors' measured round-trip time, if any measurement exists.
    pub latency: Option<Duration>,
}

/// A weight that takes part in weighted policies: positive and not NaN.
fn weighted(p: &PoolView) -> bool {
    p.weight > 0.0
}

/// Order `pools` (the load balancer's `default_pools`, in listed order) by
/// `policy`; returns a permutation of `0..pools.len()`.
///
/// - `Off`: the listed order (active–passive failover).
/// - `Random`: a weighted random order, drawn without replacement in
///   proportion to the weights (each draw is [`weighted_random`] over the pools
///   not yet drawn, with one call of `rand`, which must return values in
///   `[0, 1)`; no call is made for the last remaining pool). Pools of weight 0
///   are never drawn: they follow all the others in listed order, so they still
///   serve as failover but never take traffic while a weighted pool is healthy.
/// - `LeastOutstandingRequests`: ascending `in_flight / weight` (Cloudflare:
///   outstanding requests divided by pool weight); weight-0 pools last; ties keep
///   the listed order.
/// - `DynamicLatency`: ascending measured latency; pools without a measurement
///   follow, in listed order; ties keep the listed order.
///
/// `rand` is only called for `Random`.
pub fn order_pools(
    policy: SteeringPolicy,
    pools: &[PoolView],
    rand: &mut impl FnMut() -> f64,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pools.len()).collect();
    match policy {
        SteeringPolicy::Off => {}
        SteeringPolicy::Random => {
            let mut left: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| weighted(&pools[i]))
                .collect();
            let mut drawn = Vec::with_capacity(pools.len());
            while left.len() > 1 {
                let candidates = left.iter().map(|&i| (i, pools[i].weight));
                // `left` holds only positive weights, so a pool is always drawn.
                let pick = weighted_random(candidates, rand()).unwrap_or(left[0]);
                left.retain(|&i| i != pick);
                drawn.push(pick);
            }
            drawn.append(&mut left);
            drawn.extend((0..pools.len()).filter(|&i| !weighted(&pools[i])));
            order = drawn;
        }
        SteeringPolicy::LeastOutstandingRequests => {
            let key = |i: usize| {
                let p = &pools[i];
                weighted(p).then(|| p.in_flight as f64 / p.weight)
            };
            order.sort_by(|&a, &b| some_first(key(a), key(b)));
        }
        SteeringPolicy::DynamicLatency => {
            order.sort_by(|&a, &b| some_first(pools[a].latency, pools[b].latency));
        }
    }
    order
}

/// Ascending for `Some`, every `Some` before every `None`.
fn some_first<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A pool is healthy when it is enabled and at least `minimum_origins` of its
/// endpoints are usable (SPEC 3 step 2). A pool with no usable endpoint is
/// never healthy, even with `minimum_origins: 0`: it could not serve.
pub fn pool_healthy(enabled: bool, usable_endpoints: usize, minimum_origins: usize) -> bool {
    enabled && usable_endpoints >= minimum_origins.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash::seeded_draws;
    use SteeringPolicy::*;

    fn view(weight: f64, in_flight: u64, latency_ms: Option<u64>) -> PoolView {
        PoolView {
            weight,
            in_flight,
            latency: latency_ms.map(Duration::from_millis),
        }
    }

    fn no_rand() -> impl FnMut() -> f64 {
        || panic!("rand must not be called")
    }

    fn is_permutation(order: &[usize], n: usize) -> bool {
        let mut seen = vec![false; n];
        order.len() == n
            && order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
    }

    #[test]
    fn off_keeps_listed_order() {
        let pools = [
            view(0.0, 9, None),
            view(1.0, 0, Some(1)),
            view(0.5, 3, Some(2)),
        ];
        assert_eq!(order_pools(Off, &pools, &mut no_rand()), [0, 1, 2]);
        assert!(order_pools(Off, &[], &mut no_rand()).is_empty());
    }

    #[test]
    fn random_first_pick_follows_weights() {
        let pools = [view(0.8, 0, None), view(0.2, 0, None)];
        let mut rand = seeded_draws(1);
        let draws = 20_000;
        let mut first0 = 0;
        for _ in 0..draws {
            let order = order_pools(Random, &pools, &mut rand);
            assert!(is_permutation(&order, 2));
            first0 += (order[0] == 0) as u32;
        }
        let frac = first0 as f64 / draws as f64;
        println!("random 0.8/0.2: first-pick frequency of the 0.8 pool {frac:.4}");
        assert!((frac - 0.8).abs() <= 0.05, "{frac}");
    }

    #[test]
    fn random_zero_weights_go_last_in_listed_order() {
        let pools = [
            view(0.0, 0, None),
            view(1.0, 0, None),
            view(0.0, 0, None),
            view(0.3, 0, None),
        ];
        let mut rand = seeded_draws(7);
        for _ in 0..1_000 {
            let order = order_pools(Random, &pools, &mut rand);
            assert!(is_permutation(&order, 4));
            assert_eq!(order[2..], [0, 2]);
        }
        // All zero: listed order, no randomness needed.
        let zeros = [view(0.0, 0, None), view(0.0, 0, None)];
        assert_eq!(order_pools(Random, &zeros, &mut no_rand()), [0, 1]);
        // One weighted pool: drawn without calling rand.
        assert_eq!(order_pools(Random, &pools[..2], &mut no_rand()), [1, 0]);
    }

    #[test]
    fn random_is_deterministic_given_rand() {
        let pools = [view(1.0, 0, None), view(1.0, 0, None), view(1.0, 0, None)];
        let a = order_pools(Random, &pools, &mut seeded_draws(42));
        let b = order_pools(Random, &pools, &mut seeded_draws(42));
        assert_eq!(a, b);
        let mut seq = [0.9, 0.1].into_iter();
        let mut rand = || seq.next().unwrap();
        assert_eq!(order_pools(Random, &pools, &mut rand), [2, 0, 1]);
    }

    #[test]
    fn least_outstanding_divides_by_weight() {
        // Ratios: 10, 8, 4, 4 (tie: listed order), weight 0 last.
        let pools = [
            view(1.0, 10, None),
            view(0.5, 4, None),
            view(0.0, 0, None),
            view(1.0, 4, None),
            view(0.25, 1, None),
        ];
        assert_eq!(
            order_pools(LeastOutstandingRequests, &pools, &mut no_rand()),
            [3, 4, 1, 0, 2]
        );
        // Nothing in flight anywhere: listed order.
        let idle = [view(0.2, 0, None), view(1.0, 0, None), view(0.0, 0, None)];
        assert_eq!(
            order_pools(LeastOutstandingRequests, &idle, &mut no_rand()),
            [0, 1, 2]
        );
    }

    #[test]
    fn dynamic_latency_ascending_unmeasured_last() {
        let pools = [
            view(1.0, 0, None),
            view(1.0, 0, Some(30)),
            view(1.0, 0, Some(10)),
            view(1.0, 0, None),
            view(1.0, 0, Some(10)),
        ];
        assert_eq!(
            order_pools(DynamicLatency, &pools, &mut no_rand()),
            [2, 4, 1, 0, 3]
        );
    }

    #[test]
    fn pool_health() {
        assert!(pool_healthy(true, 2, 2));
        assert!(pool_healthy(true, 3, 1));
        assert!(!pool_healthy(true, 1, 2));
        assert!(!pool_healthy(false, 5, 1));
        assert!(!pool_healthy(true, 0, 0));
        assert!(pool_healthy(true, 1, 0));
    }
}
