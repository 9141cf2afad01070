//! The link to Redis: a Pingora background service that writes what this
//! replica changed (from the [`Inbox`]), takes in what its peers changed
//! (the events channel), and resyncs in full on every (re)connect. I/O
//! only: what is written is decided in [`super::pins`] and the owner of
//! changes, how it is spelled in [`super::wire`].
//!
//! Every Redis call is bounded by [`TIMEOUT`]; a failure or a closed
//! subscription ends the session, marks the replica disconnected (logged
//! once), and it reconnects with a backoff of up to [`BACKOFF_MAX`]. While
//! away, the replica serves from its own state; changes made meanwhile wait
//! in the queue and are written first when Redis is back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use log::{info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::aio::MultiplexedConnection;
use redis::RedisResult;

use super::pins::take_in;
use super::wire::{self, Event, Keys, ReplicaSeen, SharedPin, What};
use super::{Inbox, Status};
use crate::changes::{Change, Changes};
use crate::clock;

/// The longest any one Redis call may take.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// How often the link pings Redis and says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to reconnect.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Pins written in one round trip at most.
const PIN_BATCH: usize = 512;
/// A replica not seen for this long is left out of the admin API's list.
const FORGET_MS: u64 = 60_000;

pub struct Link {
    client: redis::Client,
    keys: Keys,
    changes: Arc<Changes>,
    status: Arc<Status>,
    inbox: parking_lot::Mutex<Option<Inbox>>,
}

/// What a session leaves for the next one: batches not yet written.
#[derive(Default)]
struct Carry {
    changes: Vec<Vec<Change>>,
}

impl Link {
    /// `url` was validated with the configuration.
    pub fn new(
        url: &str,
        changes: Arc<Changes>,
        status: Arc<Status>,
        inbox: Inbox,
    ) -> Result<Link, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("tether.cluster.redis_url: {e}"))?;
        Ok(Link {
            client,
            keys: Keys::new(&status.name),
            changes,
            status,
            inbox: parking_lot::Mutex::new(Some(inbox)),
        })
    }

    /// One connection's life: connect, subscribe, write what waited, resync,
    /// then serve until something fails. Returns why it ended.
    async fn session(&self, inbox: &mut Inbox, carry: &mut Carry, announced: &mut bool) -> String {
        match self.session_inner(inbox, carry, announced).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn session_inner(
        &self,
        inbox: &mut Inbox,
        carry: &mut Carry,
        announced: &mut bool,
    ) -> Result<std::convert::Infallible, String> {
        let mut conn = timed(self.client.get_multiplexed_async_connection()).await?;
        let pubsub = timed(self.client.get_async_pubsub()).await?;
        let (mut sink, mut messages) = pubsub.split();
        timed(sink.subscribe(self.keys.events())).await?;
        // Subscribed before reading: nothing written meanwhile is missed.
        while let Ok(batch) = inbox.changes.try_recv() {
            carry.changes.push(batch);
        }
        self.write_changes(&mut conn, carry).await?;
        self.offer_snapshot(&mut conn).await?;
        let (n_changes, n_pins) = self.resync(&mut conn).await?;
        self.status.set_connected(true);
        self.status.synced(clock::unix_ms());
        info!(
            "cluster {}: {} Redis as replica {}; resynced {n_changes} change(s) and {n_pins} session pin(s)",
            self.status.name,
            if *announced { "reconnected to" } else { "connected to" },
            self.status.replica
        );
        *announced = true;
        self.heartbeat(&mut conn).await?;
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    None => return Err("the subscription closed".into()),
                    Some(msg) => match msg.get_payload::<String>() {
                        Ok(text) => self.on_event(&text),
                        Err(e) => warn!("cluster: an unreadable event: {e}"),
                    },
                },
                batch = inbox.changes.recv() => {
                    if let Some(batch) = batch {
                        carry.changes.push(batch);
                        self.write_changes(&mut conn, carry).await?;
                    }
                }
                pin = inbox.pins.recv() => {
                    if let Some(pin) = pin {
                        let mut pins = vec![pin];
                        while pins.len() < PIN_BATCH {
                            match inbox.pins.try_recv() {
                                Ok(p) => pins.push(p),
                                Err(_) => break,
                            }
                        }
                        self.write_pins(&mut conn, &pins).await?;
                    }
                }
                _ = beat.tick() => self.heartbeat(&mut conn).await?,
            }
        }
    }

    /// A peer's event (or this replica's own, echoed: applying it again
    /// keeps every replica in the channel's one order).
    fn on_event(&self, text: &str) {
        let event = match Event::decode(text) {
            Ok(e) => e,
            Err(e) => {
                warn!("cluster: an unreadable event ({e}): {text}");
                return;
            }
        };
        let own = event.from == self.status.replica;
        let state = self.changes.state();
        match event.what {
            What::Changes(batch) => {
                if !own {
                    self.status.changes_received.fetch_add(1, Relaxed);
                }
                if let Err(e) = self.changes.apply_from_cluster(&batch, state.clock.now()) {
                    warn!(
                        "cluster: a change from replica {} was refused here: {e}",
                        event.from
                    );
                }
            }
            What::Pins(pins) => {
                let now = state.clock.now_ms();
                for pin in &pins {
                    take_in(&state, pin, now);
                }
                if !own {
                    self.status
                        .pins_received
                        .fetch_add(pins.len() as u64, Relaxed);
                }
            }
        }
    }

    /// Writes the waiting batches: each change under its target, and one
    /// event per batch, atomically (the hash and the channel agree on order).
    async fn write_changes(
        &self,
        conn: &mut MultiplexedConnection,
        carry: &mut Carry,
    ) -> Result<(), String> {
        while let Some(batch) = carry.changes.first() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for change in batch {
                let json = serde_json::to_string(change).unwrap_or_default();
                pipe.hset(self.keys.changes(), wire::target(change), json)
                    .ignore();
            }
            let event = Event {
                from: self.status.replica.clone(),
                what: What::Changes(batch.clone()),
            };
            pipe.publish(self.keys.events(), event.encode()).ignore();
            timed(pipe.query_async::<()>(conn)).await?;
            carry.changes.remove(0);
        }
        Ok(())
    }

    /// Writes pins with their idle TTL, and one event for them.
    async fn write_pins(
        &self,
        conn: &mut MultiplexedConnection,
        pins: &[SharedPin],
    ) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for pin in pins {
            let json = serde_json::to_string(pin).unwrap_or_default();
            pipe.cmd("SET")
                .arg(self.keys.pin(pin.key))
                .arg(json)
                .arg("PX")
                .arg(pin.ttl_ms.max(1))
                .ignore();
        }
        let event = Event {
            from: self.status.replica.clone(),
            what: What::Pins(pins.to_vec()),
        };
        pipe.publish(self.keys.events(), event.encode()).ignore();
        timed(pipe.query_async::<()>(conn)).await?;
        self.status
            .pins_written
            .fetch_add(pins.len() as u64, Relaxed);
        Ok(())
    }

    /// What this replica holds that the cluster has no value for (Redis
    /// restarted empty, or a first start): offered with `HSETNX`, so a
    /// value already there wins.
    async fn offer_snapshot(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let snapshot = self.changes.snapshot();
        if snapshot.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for change in &snapshot {
            let json = serde_json::to_string(change).unwrap_or_default();
            pipe.hset_nx(self.keys.changes(), wire::target(change), json)
                .ignore();
        }
        timed(pipe.query_async::<()>(conn)).await
    }

    /// Reads every change and pin in Redis and applies them here.
    async fn resync(&self, conn: &mut MultiplexedConnection) -> Result<(usize, usize), String> {
        let all: HashMap<String, String> = timed(
            redis::cmd("HGETALL")
                .arg(self.keys.changes())
                .query_async(conn),
        )
        .await?;
        let mut batch = Vec::new();
        for (target, json) in &all {
            match serde_json::from_str::<Change>(json) {
                Ok(change) => batch.push(change),
                Err(e) => warn!("cluster: unreadable change under {target}: {e}"),
            }
        }
        let state = self.changes.state();
        for change in &batch {
            if let Err(e) = self
                .changes
                .apply_from_cluster(std::slice::from_ref(change), state.clock.now())
            {
                warn!("cluster: a change in Redis was refused here: {e}");
            }
        }
        let mut pins = 0;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = timed(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(self.keys.pin_pattern())
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(conn),
            )
            .await?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.get(k).pttl(k);
                }
                let values: Vec<(Option<String>, i64)> = timed(pipe.query_async(conn)).await?;
                let now = state.clock.now_ms();
                for (value, pttl) in values {
                    let Some(pin) = value.and_then(|v| serde_json::from_str::<SharedPin>(&v).ok())
                    else {
                        continue;
                    };
                    if let Some(at) = wire::last_used_ms(now, pin.ttl_ms, pttl) {
                        pins += usize::from(take_in(&state, &pin, at));
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok((batch.len(), pins))
    }

    /// Says this replica is alive (and when it last synced), and reads who
    /// else is; a failure here is how a hung Redis is noticed.
    async fn heartbeat(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let now = clock::unix_ms();
        let me = ReplicaSeen {
            replica: self.status.replica.clone(),
            admin: self.status.admin.clone(),
            seen_unix_ms: now,
            last_sync_unix_ms: self.status.last_sync_unix_ms(),
        };
        let mut pipe = redis::pipe();
        pipe.hset(
            self.keys.replicas(),
            &me.replica,
            serde_json::to_string(&me).unwrap_or_default(),
        )
        .ignore()
        .hgetall(self.keys.replicas());
        let (all,): (HashMap<String, String>,) = timed(pipe.query_async(conn)).await?;
        let mut peers = Vec::new();
        let mut gone = Vec::new();
        for (id, json) in all {
            match serde_json::from_str::<ReplicaSeen>(&json) {
                Ok(seen) if now.saturating_sub(seen.seen_unix_ms) < FORGET_MS => peers.push(seen),
                _ => gone.push(id),
            }
        }
        peers.sort_by(|a, b| a.replica.cmp(&b.replica));
        self.status.set_peers(peers);
        if !gone.is_empty() {
            timed(
                redis::cmd("HDEL")
                    .arg(self.keys.replicas())
                    .arg(gone)
                    .query_async::<()>(conn),
            )
            .await?;
        }
        Ok(())
    }
}

/// A Redis call bounded by [`TIMEOUT`].
async fn timed<T>(call: impl Future<Output = RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
    }
}

#[async_trait]
impl BackgroundService for Link {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut inbox) = self.inbox.lock().take() else {
            return;
        };
        let mut carry = Carry::default();
        let mut announced = false;
        let mut backoff = Duration::from_millis(50);
        let mut down_since_logged = false;
        loop {
            let why = tokio::select! {
                _ = shutdown.changed() => return,
                why = self.session(&mut inbox, &mut carry, &mut announced) => why,
            };
            let was_connected = self.status.connected();
            self.status.set_connected(false);
            if was_connected {
                backoff = Duration::from_millis(50);
            }
            if !down_since_logged || was_connected {
                warn!(
                    "cluster {}: Redis is unreachable ({why}); serving from this replica's own state, tether_cluster_connected 0, retrying",
                    self.status.name
                );
                down_since_logged = true;
            }
            // Pins made while away wait in their queue (written on return);
            // past its bound they are dropped and counted.
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}
