//! Upgraded connections (WebSockets and other `101 Switching Protocols`
//! tunnels) by load balancer, pool and endpoint names: how many are open now
//! (`tether_upgraded_connections`) and how many were opened since start
//! (`tether_upgraded_connections_total`). Recorded once when a connection is
//! upgraded and once when it ends ([`Open`]'s drop); a plain request records
//! nothing here. Keyed by names, not ids, so the counts outlive a reload (a
//! connection opened before it ends after it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

/// `(load balancer, pool, endpoint)` names.
pub type Names = (Box<str>, Box<str>, Box<str>);

/// The counts of one `(load balancer, pool, endpoint)`.
#[derive(Debug)]
pub struct Counts {
    /// Its names, shared (an open connection keeps no copy of its own).
    names: Arc<Names>,
    open: AtomicU64,
    opened: AtomicU64,
}

impl Counts {
    pub fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }
    pub fn opened(&self) -> u64 {
        self.opened.load(Relaxed)
    }
}

/// The process's counts, by names.
static UPGRADED: LazyLock<RwLock<HashMap<Names, Arc<Counts>>>> = LazyLock::new(Default::default);

/// One open upgraded connection, counted until dropped.
#[derive(Debug)]
pub struct Open(Arc<Counts>);

impl Open {
    /// The `(load balancer, pool, endpoint)` it is counted under.
    pub fn names(&self) -> &Arc<Names> {
        &self.0.names
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// Counts a connection upgraded to `endpoint` of `pool` for load balancer
/// `lb`: open now (until the returned [`Open`] is dropped) and opened.
pub fn record_upgraded(lb: &str, pool: &str, endpoint: &str) -> Open {
    let counts = counts_for(lb, pool, endpoint);
    counts.opened.fetch_add(1, Relaxed);
    counts.open.fetch_add(1, Relaxed);
    Open(counts)
}

fn counts_for(lb: &str, pool: &str, endpoint: &str) -> Arc<Counts> {
    let key: Names = (lb.into(), pool.into(), endpoint.into());
    if let Some(counts) = UPGRADED.read().get(&key) {
        return Arc::clone(counts);
    }
    let names = Arc::new(key.clone());
    Arc::clone(UPGRADED.write().entry(key).or_insert_with(|| {
        Arc::new(Counts {
            names,
            open: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        })
    }))
}

/// `(names, open now, opened since start)` of every key seen since start.
pub fn snapshot() -> Vec<(Names, u64, u64)> {
    UPGRADED
        .read()
        .iter()
        .map(|(k, c)| (k.clone(), c.open(), c.opened()))
        .collect()
}

/// Open now for `(lb, pool, endpoint)` (0 when never seen).
pub fn open(lb: &str, pool: &str, endpoint: &str) -> u64 {
    let key: Names = (lb.into(), pool.into(), endpoint.into());
    UPGRADED.read().get(&key).map_or(0, |c| c.open())
}

/// Open now to `endpoint` of `pool`, all load balancers together.
pub fn open_to(pool: &str, endpoint: &str) -> u64 {
    UPGRADED
        .read()
        .iter()
        .filter(|((_, p, e), _)| &**p == pool && &**e == endpoint)
        .map(|(_, c)| c.open())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_counts_until_dropped_and_opened_stays() {
        let names = ("upgraded-test-lb", "p", "e");
        let first = record_upgraded(names.0, names.1, names.2);
        let second = record_upgraded(names.0, names.1, names.2);
        assert_eq!(open(names.0, names.1, names.2), 2);
        let other_lb = record_upgraded("upgraded-test-lb-2", names.1, names.2);
        assert!(
            open_to(names.1, names.2) >= 3,
            "all load balancers together"
        );
        drop(other_lb);
        drop(first);
        assert_eq!(open(names.0, names.1, names.2), 1);
        drop(second);
        let (_, now, total) = snapshot()
            .into_iter()
            .find(|(k, _, _)| &*k.0 == names.0)
            .expect("seen");
        assert_eq!((now, total), (0, 2));
    }
}
