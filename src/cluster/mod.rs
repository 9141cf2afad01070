//! One load balancer across replicas (docs/replicas.md): run-time changes
//! and the session pins that deviate from the hash ring, shared through
//! Redis by the replicas of one `tether.cluster.name`.
//!
//! - [`key`]: the cluster key and the MAC of a sealed value (pure).
//! - [`wire`]: key names and messages (pure).
//! - [`pins`]: which pins are shared, and taking a peer's in (pure).
//! - [`link`]: the background service that talks to Redis (I/O only).
//!
//! The request path never waits on Redis: it hands pins to the [`Outbox`]
//! (a bounded channel; a full one drops the pin and counts it), and the
//! owner of changes hands it its normalised batches through its publisher.
//! Changes from peers enter through [`crate::changes::Changes::apply_from_cluster`].

pub mod key;
pub mod link;
pub mod pins;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::changes::Change;
use wire::{Rejected, ReplicaSeen, SharedPin};

/// A reason's rejections are logged at most this often.
const REJECTED_LOG_EVERY_MS: u64 = 60_000;

/// Pins waiting for the link; more are dropped (and counted).
pub const PIN_QUEUE: usize = 65_536;
/// Change batches waiting for the link (while Redis is away).
pub const CHANGE_QUEUE: usize = 4_096;

/// What this replica knows of its link, for the admin API and metrics.
#[derive(Debug)]
pub struct Status {
    pub name: String,
    /// This process's id in the cluster: `<host name>-<pid>-<random>`.
    pub replica: String,
    pub admin: Option<String>,
    connected: AtomicBool,
    last_sync_unix_ms: AtomicU64,
    pub pins_written: AtomicU64,
    pub pins_dropped: AtomicU64,
    pub pins_received: AtomicU64,
    pub changes_received: AtomicU64,
    pub changes_dropped: AtomicU64,
    /// Values read from Redis and dropped, by [`Rejected::index`].
    rejected: [AtomicU64; Rejected::ALL.len()],
    /// Each reason's log line, at most once a minute (unix ms).
    rejected_logged: [crate::logging::Throttle; Rejected::ALL.len()],
    /// The replicas last seen in Redis (this one included).
    peers: parking_lot::Mutex<Vec<ReplicaSeen>>,
}

impl Status {
    pub fn new(name: &str, admin: Option<String>) -> Status {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        Status {
            name: name.to_string(),
            replica: format!(
                "{host}-{}-{:04x}",
                std::process::id(),
                rand::random::<u16>()
            ),
            admin,
            connected: AtomicBool::new(false),
            last_sync_unix_ms: AtomicU64::new(0),
            pins_written: AtomicU64::new(0),
            pins_dropped: AtomicU64::new(0),
            pins_received: AtomicU64::new(0),
            changes_received: AtomicU64::new(0),
            changes_dropped: AtomicU64::new(0),
            rejected: Default::default(),
            rejected_logged: Default::default(),
            peers: parking_lot::Mutex::new(Vec::new()),
        }
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }
    pub fn set_connected(&self, on: bool) {
        self.connected.store(on, Relaxed);
    }
    /// Unix ms of the last full resync; 0: never.
    pub fn last_sync_unix_ms(&self) -> u64 {
        self.last_sync_unix_ms.load(Relaxed)
    }
    pub fn synced(&self, unix_ms: u64) {
        self.last_sync_unix_ms.store(unix_ms, Relaxed);
    }
    pub fn set_peers(&self, peers: Vec<ReplicaSeen>) {
        *self.peers.lock() = peers;
    }

    /// Values dropped for `reason` since start (`tether_cluster_rejected_total`).
    pub fn rejected(&self, reason: Rejected) -> u64 {
        self.rejected[reason.index()].load(Relaxed)
    }

    /// Counts a value read from Redis and dropped: `what` it was (a fixed
    /// description, never its content), its size. Logged at most once a
    /// minute per reason (`now_unix_ms`); returns whether it was.
    pub fn reject(&self, reason: Rejected, what: &str, size: usize, now_unix_ms: u64) -> bool {
        let i = reason.index();
        let total = self.rejected[i].fetch_add(1, Relaxed) + 1;
        if self.rejected_logged[i].due(now_unix_ms, REJECTED_LOG_EVERY_MS) {
            log::warn!(
                "cluster {}: dropped {what} of {size} bytes ({}); {total} dropped for this reason since start (tether_cluster_rejected_total); logged at most once a minute",
                self.name,
                reason.reason()
            );
            return true;
        }
        false
    }

    /// `GET /v1/cluster`.
    pub fn view(&self, now_unix_ms: u64) -> ClusterView {
        let ago = |t: u64| (t > 0).then(|| now_unix_ms.saturating_sub(t) as f64 / 1000.0);
        ClusterView {
            name: self.name.clone(),
            replica: self.replica.clone(),
            connected: self.connected(),
            last_sync_unix_ms: Some(self.last_sync_unix_ms()).filter(|&t| t > 0),
            last_sync_seconds_ago: ago(self.last_sync_unix_ms()),
            pins_written: self.pins_written.load(Relaxed),
            pins_dropped: self.pins_dropped.load(Relaxed),
            pins_received: self.pins_received.load(Relaxed),
            changes_received: self.changes_received.load(Relaxed),
            rejected: Rejected::ALL
                .iter()
                .map(|&r| (r.reason(), self.rejected(r)))
                .collect(),
            replicas: self
                .peers
                .lock()
                .iter()
                .map(|p| ReplicaView {
                    replica: p.replica.clone(),
                    admin: p.admin.clone(),
                    seen_seconds_ago: ago(p.seen_unix_ms).unwrap_or(0.0),
                    last_sync_seconds_ago: ago(p.last_sync_unix_ms),
                })
                .collect(),
        }
    }
}

/// This replica's link, and the replicas it last saw in Redis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    pub name: String,
    pub replica: String,
    pub connected: bool,
    pub last_sync_unix_ms: Option<u64>,
    pub last_sync_seconds_ago: Option<f64>,
    pub pins_written: u64,
    pub pins_dropped: u64,
    pub pins_received: u64,
    pub changes_received: u64,
    /// Values read from Redis and dropped, by reason (`tether_cluster_rejected_total`).
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    pub replicas: Vec<ReplicaView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaView {
    pub replica: String,
    pub admin: Option<String>,
    pub seen_seconds_ago: f64,
    pub last_sync_seconds_ago: Option<f64>,
}

/// Where the request path and the owner of changes leave what the link
/// writes. Never blocks: a full queue drops and counts.
#[derive(Clone)]
pub struct Outbox {
    pins: mpsc::Sender<SharedPin>,
    changes: mpsc::Sender<Vec<Change>>,
    status: Arc<Status>,
}

/// The link's ends of the queues.
pub struct Inbox {
    pub pins: mpsc::Receiver<SharedPin>,
    pub changes: mpsc::Receiver<Vec<Change>>,
}

/// A connected pair of queues.
pub fn queues(status: Arc<Status>) -> (Outbox, Inbox) {
    let (pins_tx, pins_rx) = mpsc::channel(PIN_QUEUE);
    let (changes_tx, changes_rx) = mpsc::channel(CHANGE_QUEUE);
    (
        Outbox {
            pins: pins_tx,
            changes: changes_tx,
            status,
        },
        Inbox {
            pins: pins_rx,
            changes: changes_rx,
        },
    )
}

impl Outbox {
    /// A pin to share (from the request path).
    pub fn pin(&self, pin: SharedPin) {
        if self.pins.try_send(pin).is_err() {
            self.status.pins_dropped.fetch_add(1, Relaxed);
        }
    }

    /// A normalised batch applied here (from the owner of changes).
    pub fn changes(&self, batch: &[Change]) {
        if batch.is_empty() {
            return;
        }
        if self.changes.try_send(batch.to_vec()).is_err() {
            self.status.changes_dropped.fetch_add(1, Relaxed);
            log::warn!("cluster: the queue of changes to share is full; this change stays local until the next resync");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let status = Arc::new(Status::new("t", None));
        let (out, mut inbox) = queues(Arc::clone(&status));
        let pin = SharedPin {
            key: 1,
            pool: "p".into(),
            endpoint: "a".into(),
            ttl_ms: 1000,
        };
        for _ in 0..PIN_QUEUE + 10 {
            out.pin(pin.clone());
        }
        assert_eq!(status.pins_dropped.load(Relaxed), 10);
        assert_eq!(inbox.pins.try_recv().unwrap(), pin);
        out.changes(&[]);
        assert!(
            inbox.changes.try_recv().is_err(),
            "empty batches are not sent"
        );
        // Rejections: counted each, logged once a minute per reason.
        assert!(status.reject(Rejected::BadMac, "an event", 10, 1_000));
        assert!(!status.reject(Rejected::BadMac, "an event", 10, 30_000));
        assert!(status.reject(Rejected::TooLarge, "an event", 10, 30_000));
        assert!(status.reject(Rejected::BadMac, "an event", 10, 61_000));
        assert_eq!(status.rejected(Rejected::BadMac), 3);
        assert_eq!(status.rejected(Rejected::TooLarge), 1);
        assert_eq!(status.rejected(Rejected::Malformed), 0);
        let view = status.view(5_000);
        assert_eq!(view.rejected["bad_mac"], 3);
        assert_eq!(view.rejected["stale"], 0);
        assert!(!view.connected);
        assert_eq!(view.last_sync_unix_ms, None);
        status.synced(4_000);
        assert_eq!(status.view(5_000).last_sync_seconds_ago, Some(1.0));
    }
}
