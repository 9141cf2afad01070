//! The session table of the `header` and `source_ip` affinity types (SPEC
//! 4.1): session key → pinned endpoint, shared by all worker threads.
//!
//! - **Time is passed in.** Every call that needs the time takes `now`, in
//!   milliseconds on a monotonic clock the caller owns; the table reads no
//!   clock (tests advance time by hand).
//! - **Idle TTL.** An entry idle (not hit, not put) for `idle_ttl_ms` or longer
//!   is expired. The TTL differs per load balancer, so [`SessionTable::get`]
//!   takes it; [`SessionTable::sweep`] is given one TTL for the whole table and
//!   must be called with the largest TTL in use, so it never removes a live
//!   entry. Entries of a load balancer with a shorter TTL then linger (at most
//!   until that largest TTL, or until evicted), but `get` still reports them
//!   `Expired` at their own TTL.
//! - **Bounded.** Never more than `max_sessions` entries (exactly). The table is
//!   split into shards, each its own LRU list behind its own mutex, chosen by
//!   the key's high bits (keys are already well-mixed hashes); the
//!   `max_sessions` are divided between the shards, so when a shard is full
//!   its least recently used entry is evicted. Eviction is therefore LRU per
//!   shard, approximately LRU overall. Small tables (under 2,048 entries) have
//!   one shard and are exactly LRU; large ones have up to 64 shards of at least
//!   1,024 entries. As keys never spread perfectly evenly, a shard can fill
//!   (and evict) a little before the whole table does: 1,000,000 random keys
//!   put into a table of 1,000,000 leave about 995,800 entries.
//! - **Cost.** An entry is one heap node of 40 bytes (key, pin, last-used time,
//!   two list links) plus a hash-table slot of 16 bytes and a control byte;
//!   84 bytes an entry measured at 1,000,000 entries (process RSS, glibc
//!   malloc; the `#[ignore]`d `memory_per_entry` test measures it).
//!
//! Concurrent callers read the clock before taking a shard's lock, so an
//! entry can be refreshed with a `now` slightly older than its neighbours':
//! last-used times never go backwards (the newer one is kept), and LRU order
//! equals last-used order up to that jitter — enough for `sweep`, which stops
//! at the first live entry from the LRU end.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use lru::LruCache;
use parking_lot::Mutex;

/// Where a session is pinned: indexes of a pool and of an endpoint in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePin {
    pub pool: u32,
    pub endpoint: u32,
}

/// The result of [`SessionTable::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Live: the entry's last-used time and LRU position were refreshed.
    Hit(TablePin),
    /// Idle for the TTL or longer: the entry has been removed.
    Expired(TablePin),
    /// No entry.
    Miss,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    pin: TablePin,
    last_used: u64,
}

impl Entry {
    fn expired(&self, idle_ttl_ms: u64, now: u64) -> bool {
        now.saturating_sub(self.last_used) >= idle_ttl_ms
    }
}

/// One shard on its own cache line(s), so shards don't share one.
#[repr(align(64))]
struct Shard(Mutex<LruCache<u64, Entry>>);

/// Most shards a table is split into.
const MAX_SHARDS: usize = 64;
/// Fewest entries a shard holds when the table has more than one.
const MIN_PER_SHARD: usize = 1024;

/// The bounded, sharded LRU session table (module docs).
pub struct SessionTable {
    /// Empty when `max_sessions` is 0: nothing is ever stored.
    shards: Box<[Shard]>,
    max_sessions: usize,
    /// Where the next `sweep` starts, so bounded sweeps visit every shard.
    sweep_from: AtomicUsize,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("max_sessions", &self.max_sessions)
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl SessionTable {
    /// A table of at most `max_sessions` entries. Memory is allocated as
    /// entries arrive, not up front.
    pub fn new(max_sessions: usize) -> SessionTable {
        let shards = (max_sessions / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        Self::with_shards(max_sessions, shards)
    }

    /// As [`new`](Self::new) with `shards` shards (at most `max_sessions`;
    /// at least 1 unless `max_sessions` is 0).
    fn with_shards(max_sessions: usize, shards: usize) -> SessionTable {
        let shards = shards.clamp(1, max_sessions.max(1));
        let shards = if max_sessions == 0 { 0 } else { shards };
        let (base, extra) = (max_sessions / shards.max(1), max_sessions % shards.max(1));
        let shards = (0..shards)
            .map(|i| {
                let cap = base + usize::from(i < extra);
                let cap = NonZeroUsize::new(cap).expect("shards <= max_sessions");
                Shard(Mutex::new(LruCache::sparse(cap)))
            })
            .collect();
        SessionTable {
            shards,
            max_sessions,
            sweep_from: AtomicUsize::new(0),
        }
    }

    /// The bound given to [`new`](Self::new).
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    fn shard(&self, key: u64) -> Option<&Shard> {
        // The high bits of the key, scaled to the shard count ("fastrange").
        let i = ((u128::from(key) * self.shards.len() as u128) >> 64) as usize;
        self.shards.get(i)
    }

    /// Look `key` up. A live entry (idle less than `idle_ttl_ms`) is a `Hit`
    /// and becomes the most recently used, last used at `now`; an entry idle
    /// for `idle_ttl_ms` or longer is removed and reported `Expired`.
    pub fn get(&self, key: u64, idle_ttl_ms: u64, now: u64) -> Lookup {
        let Some(shard) = self.shard(key) else {
            return Lookup::Miss;
        };
        let mut lru = shard.0.lock();
        let Some(entry) = lru.get_mut(&key) else {
            return Lookup::Miss;
        };
        let pin = entry.pin;
        if entry.expired(idle_ttl_ms, now) {
            lru.pop(&key);
            Lookup::Expired(pin)
        } else {
            entry.last_used = entry.last_used.max(now);
            Lookup::Hit(pin)
        }
    }

    /// Pin `key` to `pin` (insert or replace), last used at `now`, most
    /// recently used. When the key's shard is full its least recently used
    /// entry is evicted.
    pub fn put(&self, key: u64, pin: TablePin, now: u64) {
        let Some(shard) = self.shard(key) else {
            return;
        };
        shard.0.lock().push(
            key,
            Entry {
                pin,
                last_used: now,
            },
        );
    }

    /// Forget `key`.
    pub fn remove(&self, key: u64) {
        if let Some(shard) = self.shard(key) {
            shard.0.lock().pop(&key);
        }
    }

    /// The number of entries (expired ones not yet removed included). Takes
    /// every shard's lock in turn: for metrics, not for the request path.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.0.lock().is_empty())
    }

    /// Remove entries idle for `idle_ttl_ms` or longer (call with the largest
    /// TTL in use: module docs), at most `budget` of them, from the least
    /// recently used end of each shard, stopping in a shard at its first live
    /// entry. Work is bounded: `budget` removals plus one look per shard.
    /// Successive calls start at successive shards. Returns how many entries
    /// were removed.
    pub fn sweep(&self, idle_ttl_ms: u64, now: u64, budget: usize) -> usize {
        let n = self.shards.len();
        if n == 0 {
            return 0;
        }
        let start = self.sweep_from.fetch_add(1, Ordering::Relaxed) % n;
        let mut removed = 0;
        for k in 0..n {
            if removed >= budget {
                break;
            }
            let mut lru = self.shards[(start + k) % n].0.lock();
            while removed < budget {
                match lru.peek_lru() {
                    Some((_, e)) if e.expired(idle_ttl_ms, now) => {
                        lru.pop_lru();
                        removed += 1;
                    }
                    _ => break,
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const P1: TablePin = TablePin {
        pool: 0,
        endpoint: 1,
    };
    const P2: TablePin = TablePin {
        pool: 1,
        endpoint: 2,
    };

    /// Spread small integers over the whole key space (keys are hashes).
    fn k(i: u64) -> u64 {
        crate::balance::hash::stable_hash(&i.to_le_bytes())
    }

    #[test]
    fn hit_miss_expired() {
        let t = SessionTable::new(100);
        assert_eq!(t.get(k(1), 1_000, 0), Lookup::Miss);
        t.put(k(1), P1, 10);
        assert_eq!(t.get(k(1), 1_000, 500), Lookup::Hit(P1));
        assert_eq!(t.get(k(2), 1_000, 500), Lookup::Miss);
        // Idle exactly the TTL: expired, and removed.
        assert_eq!(t.get(k(1), 1_000, 1_500), Lookup::Expired(P1));
        assert_eq!(t.get(k(1), 1_000, 1_500), Lookup::Miss);
        assert!(t.is_empty());
        // Replace.
        t.put(k(3), P1, 0);
        t.put(k(3), P2, 1);
        assert_eq!(t.get(k(3), 1_000, 2), Lookup::Hit(P2));
        assert_eq!(t.len(), 1);
        t.remove(k(3));
        t.remove(k(3));
        assert_eq!(t.get(k(3), 1_000, 2), Lookup::Miss);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn hit_refreshes_the_idle_window() {
        let t = SessionTable::new(100);
        t.put(k(1), P1, 0);
        for now in (900..=9_000).step_by(900) {
            assert_eq!(t.get(k(1), 1_000, now), Lookup::Hit(P1), "at {now}");
        }
        assert_eq!(t.get(k(1), 1_000, 9_999), Lookup::Hit(P1));
        assert_eq!(t.get(k(1), 1_000, 10_999), Lookup::Expired(P1));
        // Put refreshes too.
        t.put(k(2), P1, 0);
        t.put(k(2), P2, 800);
        assert_eq!(t.get(k(2), 1_000, 1_700), Lookup::Hit(P2));
        // A stale `now` (a racing thread) never moves last-used backwards.
        t.put(k(3), P1, 5_000);
        assert_eq!(t.get(k(3), 1_000, 4_000), Lookup::Hit(P1));
        assert_eq!(t.get(k(3), 1_000, 5_999), Lookup::Hit(P1));
        // A TTL of 0 expires everything.
        t.put(k(4), P1, 0);
        assert_eq!(t.get(k(4), 0, 0), Lookup::Expired(P1));
    }

    #[test]
    fn lru_eviction_order_single_shard() {
        let t = SessionTable::new(10);
        assert_eq!(t.shards.len(), 1);
        for i in 0..10 {
            t.put(k(i), P1, i);
        }
        // Use 0..5 again: 5..10 are now the least recently used.
        for i in 0..5 {
            assert_eq!(t.get(k(i), 1_000, 20), Lookup::Hit(P1));
        }
        for i in 10..15 {
            t.put(k(i), P2, 30);
            assert!(t.len() <= 10);
        }
        assert_eq!(t.len(), 10);
        for i in 5..10 {
            assert_eq!(t.get(k(i), 1_000, 40), Lookup::Miss, "{i} evicted");
        }
        for i in (0..5).chain(10..15) {
            assert!(matches!(t.get(k(i), 1_000, 40), Lookup::Hit(_)), "{i} kept");
        }
    }

    #[test]
    fn eviction_at_the_bound_sharded() {
        let max = 10_000;
        let t = SessionTable::new(max);
        assert!(t.shards.len() > 1);
        let min_cap = max / t.shards.len();
        // One key used early and again late survives the flood after it.
        t.put(k(0), P2, 0);
        for i in 1..(max as u64 + 5_000) {
            t.put(k(i), P1, i);
            if i % 997 == 0 {
                assert!(t.len() <= max);
            }
        }
        assert_eq!(t.get(k(0), u64::MAX, 1), Lookup::Miss);
        t.put(k(0), P2, 0);
        let end = max as u64 + 5_000;
        for i in end..end + min_cap as u64 - 1 {
            t.put(k(i), P1, i);
        }
        assert!(t.len() <= max);
        assert_eq!(t.get(k(0), u64::MAX, 1), Lookup::Hit(P2));
        // The last `min_cap` keys put (k(0) and these) always survive: no
        // shard got more of them than it holds.
        for i in end..end + min_cap as u64 - 1 {
            assert!(matches!(t.get(k(i), u64::MAX, 1), Lookup::Hit(_)), "{i}");
        }
    }

    #[test]
    fn bound_is_exact() {
        for max in [1, 2, 3, 63, 64, 65, 1_000, 2_047, 2_048, 5_000, 100_000] {
            let t = SessionTable::new(max);
            let caps: usize = t.shards.iter().map(|s| s.0.lock().cap().get()).sum();
            assert_eq!(caps, max);
            assert!(t.shards.len() <= MAX_SHARDS);
            for i in 0..(max as u64 * 2 + 10).min(20_000) {
                t.put(k(i), P1, 0);
            }
            assert!(t.len() <= max);
        }
        let t = SessionTable::new(0);
        t.put(k(1), P1, 0);
        assert_eq!(t.get(k(1), 1_000, 0), Lookup::Miss);
        assert_eq!((t.len(), t.sweep(0, 0, 10)), (0, 0));
        t.remove(k(1));
        // The constructor with explicit shards clamps them.
        assert_eq!(SessionTable::with_shards(3, 64).shards.len(), 3);
        assert_eq!(SessionTable::with_shards(3, 0).shards.len(), 1);
    }

    #[test]
    fn sweep_removes_only_expired() {
        let t = SessionTable::new(1_000);
        for i in 0..100 {
            t.put(k(i), P1, i * 10); // last used 0, 10, .., 990
        }
        // TTL 500 at now 1000: entries last used at <= 500 are expired (0..=50).
        assert_eq!(t.sweep(500, 1_000, usize::MAX), 51);
        assert_eq!(t.len(), 49);
        for i in 0..100 {
            let got = t.get(k(i), 10_000, 1_000);
            assert_eq!(got == Lookup::Miss, i <= 50, "{i}");
        }
        // Nothing more to do.
        assert_eq!(t.sweep(500, 1_000, usize::MAX), 0);
        // A hit moves an old entry out of the sweep's way.
        let t = SessionTable::new(1_000);
        t.put(k(1), P1, 0);
        t.put(k(2), P1, 0);
        assert_eq!(t.get(k(1), 1_000, 900), Lookup::Hit(P1));
        assert_eq!(t.sweep(1_000, 1_500, 10), 1);
        assert_eq!(t.get(k(1), 1_000, 1_500), Lookup::Hit(P1));
    }

    #[test]
    fn sweep_is_bounded_and_visits_every_shard() {
        let t = SessionTable::new(64 * 1024);
        assert_eq!(t.shards.len(), 64);
        for i in 0..10_000 {
            t.put(k(i), P1, 0);
        }
        let mut total = 0;
        loop {
            let n = t.sweep(100, 1_000, 7);
            assert!(n <= 7);
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 10_000);
        assert!(t.is_empty());
        assert_eq!(t.sweep(100, 1_000, 0), 0);
    }

    #[test]
    fn flood_keeps_the_bound() {
        let t = SessionTable::new(1_000);
        for i in 0..100_000 {
            t.put(k(i), P1, i);
            if i % 1_000 == 0 {
                assert!(t.len() <= 1_000);
            }
        }
        assert_eq!(t.len(), 1_000);
        // Sequential (unhashed) keys land in few shards; the bound holds anyway.
        let t = SessionTable::new(100_000);
        for i in 0..200_000 {
            t.put(i, P1, i);
        }
        assert!(t.len() <= 100_000);
    }

    #[test]
    fn concurrent_smoke() {
        let max = 2_000;
        let t = Arc::new(SessionTable::new(max));
        let threads: Vec<_> = (0..4u64)
            .map(|th| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut hits = 0;
                    for i in 0..10_000u64 {
                        let key = k((i * 7 + th) % 3_000);
                        let now = i;
                        match i % 5 {
                            0 | 1 => {
                                let pin = TablePin {
                                    pool: th as u32,
                                    endpoint: i as u32,
                                };
                                t.put(key, pin, now)
                            }
                            2 | 3 => {
                                if let Lookup::Hit(_) = t.get(key, 500, now) {
                                    hits += 1;
                                }
                            }
                            _ => {
                                if i % 10 == 4 {
                                    t.remove(key)
                                } else {
                                    t.sweep(500, now, 16);
                                }
                            }
                        }
                        if i % 1_000 == 0 {
                            assert!(t.len() <= max);
                        }
                    }
                    hits
                })
            })
            .collect();
        let hits: u32 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(hits > 0);
        assert!(t.len() <= max);
    }

    fn rss_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// `cargo test --release --bin tether -- --ignored --nocapture table`
    #[test]
    #[ignore]
    fn memory_per_entry() {
        const N: usize = 1_000_000;
        let before = rss_bytes();
        let t = SessionTable::new(N);
        for i in 0..N as u64 {
            t.put(
                k(i),
                TablePin {
                    pool: 1,
                    endpoint: i as u32,
                },
                i,
            );
        }
        // Shards fill unevenly: a few evicted before the table was full.
        let len = t.len();
        assert!(len <= N && len > N * 99 / 100, "{len}");
        let after = rss_bytes();
        let per = (after.saturating_sub(before)) as f64 / len as f64;
        println!("session table: {per:.1} bytes per entry at {len} entries");
        assert!(per < 150.0, "{per} bytes per entry");
        // And time per operation, for the record.
        let start = crate::clock::stopwatch();
        for i in 0..N as u64 {
            std::hint::black_box(t.get(k(i), u64::MAX, N as u64));
        }
        let ns = start.elapsed().as_nanos() as f64 / N as f64;
        println!("session table: {ns:.0} ns per hit (incl. key hashing)");
    }
}
