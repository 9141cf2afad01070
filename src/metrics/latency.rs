//! Latency histograms (`GET /metrics`): each request's total time and its
//! upstream response time by load balancer, pool and endpoint, and each
//! monitor check's time by pool and endpoint.
//!
//! The request path neither allocates nor locks: a series lives in a fixed
//! open-addressed table of slots, claimed once by a compare-and-swap on its
//! key (the load balancer's id mixed with the endpoint's id, both stable
//! hashes of names, so a reload keeps every series), its buckets allocated
//! the first time only; every later request is a probe of a few slots and
//! atomic adds. The table's size bounds the series: past it, requests are
//! counted in one overflow series labelled `-`.
//!
//! Buckets are fixed (seconds): 0.5 ms to 30 s, about ×2.5 apart, plus `+Inf`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus::proto;

/// Upper bounds of the buckets, in microseconds (`+Inf` is implied).
pub const BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Series of (load balancer, endpoint) pairs kept apart; more share `-`.
const REQUEST_SLOTS: usize = 2048;
/// Endpoints whose monitor checks are kept apart.
const PROBE_SLOTS: usize = 1024;

/// One histogram: counts per bucket (not cumulative; the last is `+Inf`),
/// the sum in microseconds and the count.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// The bucket a time falls into (`le` is inclusive, as Prometheus has it).
pub fn bucket_index(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_index(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The Prometheus form: cumulative buckets, sum in seconds, count.
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The histogram as Prometheus's protobuf type, for the exposition.
    pub fn proto(&self) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        let mut running = 0;
        let mut buckets = Vec::with_capacity(BOUNDS_US.len());
        for (bound, n) in BOUNDS_US.iter().zip(&self.buckets) {
            running += n.load(Relaxed);
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound as f64 / 1e6);
            b.set_cumulative_count(running);
            buckets.push(b);
        }
        running += self.buckets[BOUNDS_US.len()].load(Relaxed);
        h.set_bucket(buckets);
        // The count is the buckets' total, so `+Inf` == `_count` in one scrape.
        h.set_sample_count(running);
        h.set_sample_sum(self.sum_us.load(Relaxed) as f64 / 1e6);
        h
    }
}

/// What one slot's series are about.
pub struct Series<T> {
    /// Load balancer id (0: none, or the overflow series).
    pub lb: u64,
    /// Endpoint id (`None`: none, or the overflow series).
    pub endpoint: Option<u64>,
    pub data: T,
}

struct Slot<T> {
    /// 0: free.
    key: AtomicU64,
    series: OnceLock<Box<Series<T>>>,
}

/// A fixed table of series claimed without locks.
pub struct Table<T> {
    slots: Box<[Slot<T>]>,
    overflow: Series<T>,
}

fn key_of(lb: u64, endpoint: Option<u64>) -> u64 {
    let e = endpoint.map_or(0x5eed, |e| e ^ 0x9e37_79b9_7f4a_7c15);
    let k = lb.rotate_left(29) ^ e.wrapping_mul(0xff51_afd7_ed55_8ccd);
    if k == 0 {
        1
    } else {
        k
    }
}

impl<T: Default> Table<T> {
    pub fn new(slots: usize) -> Self {
        Table {
            slots: (0..slots)
                .map(|_| Slot {
                    key: AtomicU64::new(0),
                    series: OnceLock::new(),
                })
                .collect(),
            overflow: Series {
                lb: 0,
                endpoint: None,
                data: T::default(),
            },
        }
    }

    /// The series of `(lb, endpoint)`: claimed on first use (one
    /// allocation), found by a short probe after.
    pub fn get(&self, lb: u64, endpoint: Option<u64>) -> &T {
        let key = key_of(lb, endpoint);
        let n = self.slots.len();
        let start = (key as usize) % n.max(1);
        for i in 0..n.min(64) {
            let slot = &self.slots[(start + i) % n];
            let mut current = slot.key.load(Relaxed);
            if current == 0 {
                current = match slot.key.compare_exchange(0, key, Relaxed, Relaxed) {
                    Ok(_) => key,
                    Err(other) => other,
                };
            }
            if current == key {
                return &slot
                    .series
                    .get_or_init(|| {
                        Box::new(Series {
                            lb,
                            endpoint,
                            data: T::default(),
                        })
                    })
                    .data;
            }
        }
        &self.overflow.data
    }

    /// Every series in use, and the overflow one last.
    pub fn all(&self) -> impl Iterator<Item = &Series<T>> {
        self.slots
            .iter()
            .filter_map(|s| s.series.get().map(|b| &**b))
            .chain(std::iter::once(&self.overflow))
    }
}

/// A request's two histograms.
#[derive(Default)]
pub struct RequestTimes {
    pub total: Histogram,
    pub upstream: Histogram,
}

static REQUESTS: LazyLock<Table<RequestTimes>> = LazyLock::new(|| Table::new(REQUEST_SLOTS));
static PROBES: LazyLock<Table<Histogram>> = LazyLock::new(|| Table::new(PROBE_SLOTS));

/// Records one finished request: `lb` the load balancer's id (0: none),
/// `endpoint` the id of the endpoint it went to last.
pub fn record_request(lb: u64, endpoint: Option<u64>, total: Duration, upstream: Option<Duration>) {
    let times = REQUESTS.get(lb, endpoint);
    times.total.observe(total);
    if let Some(u) = upstream {
        times.upstream.observe(u);
    }
}

/// Records one monitor check (its probe and immediate re-tries).
pub fn record_probe(endpoint: u64, took: Duration) {
    PROBES.get(0, Some(endpoint)).observe(took);
}

/// Every request series claimed so far (the overflow one last).
pub fn request_series() -> impl Iterator<Item = &'static Series<RequestTimes>> {
    REQUESTS.all()
}

/// Every monitor-probe series claimed so far.
pub fn probe_series() -> impl Iterator<Item = &'static Series<Histogram>> {
    PROBES.all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(500), 0);
        assert_eq!(bucket_index(501), 1);
        assert_eq!(bucket_index(30_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket_index(30_000_001), BOUNDS_US.len());
    }

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let h = Histogram::default();
        for ms in [0.2, 0.7, 3.0, 3.0, 40_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let p = h.proto();
        let counts: Vec<u64> = p
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(&counts[..4], &[1, 2, 2, 4]);
        assert_eq!(*counts.last().unwrap(), 4, "40 s is only in +Inf");
        assert_eq!(p.get_sample_count(), 5);
        assert!((p.get_sample_sum() - 40.0069).abs() < 1e-6);
    }

    #[test]
    fn table_keeps_series_apart_and_overflows_into_one() {
        let t: Table<Histogram> = Table::new(4);
        let a = t.get(1, Some(10)) as *const Histogram;
        let b = t.get(1, Some(11)) as *const Histogram;
        let none = t.get(0, None) as *const Histogram;
        assert_ne!(a, b);
        assert_ne!(a, none);
        assert_eq!(a, t.get(1, Some(10)) as *const Histogram, "found again");
        t.get(2, Some(10));
        let over = t.get(3, Some(10)) as *const Histogram;
        assert_eq!(over, &t.overflow.data as *const Histogram, "full: overflow");
        assert_eq!(t.all().count(), 5);
    }
}
