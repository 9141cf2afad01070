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
use redis::{IntoConnectionInfo, RedisResult};

use super::key::ClusterKey;
use super::pins::take_in;
use super::wire::{self, Keys, Rejected, ReplicaSeen, SharedPin, What};
use super::{Inbox, Status};
use crate::changes::{Change, ChangeError, Changes};
use crate::clock;
use crate::config::Cluster;

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
/// The `changes` hash is read at resync only while it has at most this
/// many fields ...
pub const MAX_CHANGE_FIELDS: u64 = 10_000;
/// ... and takes at most this much of Redis's memory (`MEMORY USAGE`);
/// past either, it is not read (counted `too_large`) and this replica keeps
/// its own state.
pub const MAX_CHANGES_BYTES: u64 = 16 * 1024 * 1024;
/// Fields asked for per `HSCAN` of the `changes` hash.
const HSCAN_COUNT: usize = 256;
/// Entries of the `replicas` hash read per heartbeat at most.
const MAX_REPLICAS: usize = 256;
/// Events remembered (by MAC) to drop one received twice; an event older
/// than [`wire::MAX_EVENT_SKEW_MS`] is stale anyway.
const SEEN_EVENTS: usize = 16_384;

/// `HDEL` of the fields `ARGV[3..]` of the hash `KEYS[1]` while its field
/// `ARGV[1]` holds `ARGV[2]`; returns how many went.
const DROP_IF_DELETED: &str =
    "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end \
local n = 0 for i = 3, #ARGV do n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end return n";

/// The cluster key of `tether.cluster.key_file`, read (again) at start.
pub fn key(c: &Cluster) -> Result<ClusterKey, String> {
    let shown = format!("{:?}", c.key_file.display().to_string());
    let bytes = std::fs::read(&c.key_file)
        .map_err(|e| format!("tether.cluster.key_file: cannot read {shown}: {e}"))?;
    ClusterKey::from_file_bytes(&bytes).map_err(|e| format!("tether.cluster.key_file: {shown} {e}"))
}

/// The Redis client of `tether.cluster`: its URL, the password (and user)
/// of `password_file` (and `username`), and for `rediss://` the CA of
/// `ca_file` (the system's roots without it).
pub fn client(c: &Cluster) -> Result<redis::Client, String> {
    let mut info = c
        .redis_url
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("tether.cluster.redis_url: {e}"))?;
    if let Some(file) = &c.password_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "tether.cluster.password_file: cannot read {:?}: {e}",
                file.display().to_string()
            )
        })?;
        let mut settings = info.redis_settings().clone().set_password(text.trim());
        if let Some(user) = &c.username {
            settings = settings.set_username(user);
        }
        info = info.set_redis_settings(settings);
    }
    match &c.ca_file {
        None => redis::Client::open(info).map_err(|e| format!("tether.cluster.redis_url: {e}")),
        Some(file) => {
            let shown = format!("{:?}", file.display().to_string());
            let pem = std::fs::read(file)
                .map_err(|e| format!("tether.cluster.ca_file: cannot read {shown}: {e}"))?;
            if !pem
                .windows(b"-----BEGIN CERTIFICATE-----".len())
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(format!(
                    "tether.cluster.ca_file: {shown} holds no PEM certificate"
                ));
            }
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| format!("tether.cluster.ca_file: {shown}: {e}"))
        }
    }
}

pub struct Link {
    client: redis::Client,
    cluster_key: ClusterKey,
    /// The MACs of the events received lately (a replay is dropped).
    seen: parking_lot::Mutex<lru::LruCache<[u8; 32], ()>>,
    /// The `at_unix_ms` of the last event written: each is later.
    last_at: std::sync::atomic::AtomicU64,
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
    /// `client` and `cluster_key` from [`client`] and [`key`].
    pub fn new(
        client: redis::Client,
        cluster_key: ClusterKey,
        changes: Arc<Changes>,
        status: Arc<Status>,
        inbox: Inbox,
    ) -> Link {
        // An object change too large to reach the other replicas is refused
        // where it is made, rather than kept on this replica only.
        changes.set_shared_limit(wire::max_change_json(&status.replica));
        Link {
            client,
            cluster_key,
            seen: parking_lot::Mutex::new(lru::LruCache::unbounded()),
            last_at: std::sync::atomic::AtomicU64::new(0),
            keys: Keys::new(&status.name),
            changes,
            status,
            inbox: parking_lot::Mutex::new(Some(inbox)),
        }
    }

    /// Counts and (at most once a minute per reason) logs a dropped value.
    fn reject(&self, reason: Rejected, what: &str, size: usize) {
        self.status.reject(reason, what, size, clock::unix_ms());
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
                    Some(msg) => self.on_event(msg.get_payload_bytes()),
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
    /// keeps every replica in the channel's one order). Opened first: an
    /// event that is too large, unsigned, forged or out of range is dropped
    /// and counted, never logged.
    fn on_event(&self, bytes: &[u8]) {
        let event = match wire::open_event(&self.cluster_key, &self.keys, bytes, clock::unix_ms()) {
            Ok(e) => e,
            Err(reason) => return self.reject(reason, "an event", bytes.len()),
        };
        if let Some(tag) = wire::tag_of(bytes) {
            let mut seen = self.seen.lock();
            if seen.put(tag, ()).is_some() {
                drop(seen);
                return self.reject(Rejected::Stale, "an event received twice", bytes.len());
            }
            while seen.len() > SEEN_EVENTS {
                seen.pop_lru();
            }
        }
        let own = event.from == self.status.replica;
        let state = self.changes.state();
        match event.what {
            What::Changes(batch) => {
                match self.changes.apply_from_cluster(&batch, state.clock.now()) {
                    Ok(_) if !own => {
                        self.status.changes_received.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    // An object is validated against this replica's own
                    // file: one that does not fit here is worth a line.
                    Err(e @ ChangeError::Invalid(_)) if batch.iter().any(Change::is_object) => {
                        warn!(
                            "cluster: an object from replica {} was refused here: {e}",
                            event.from
                        )
                    }
                    Err(ChangeError::Invalid(_)) => {
                        self.reject(Rejected::OutOfRange, "a change event", bytes.len())
                    }
                    Err(e) => warn!(
                        "cluster: a change from replica {} was refused here: {e}",
                        event.from
                    ),
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

    /// The sealed events of `what`, each within the bound; an entry too
    /// large for any event is logged (its size) and left out.
    fn events(&self, what: &What) -> Vec<String> {
        let now = clock::unix_ms();
        let at = match self
            .last_at
            .fetch_update(Relaxed, Relaxed, |last| Some(now.max(last + 1)))
        {
            Ok(last) | Err(last) => now.max(last + 1),
        };
        let (events, too_large) = wire::seal_events(
            &self.cluster_key,
            &self.keys,
            &self.status.replica,
            at,
            what,
        );
        if !too_large.is_empty() {
            warn!(
                "cluster {}: {} entr(ies) larger than {} bytes not shared",
                self.status.name,
                too_large.len(),
                wire::MAX_VALUE
            );
        }
        events
    }

    /// Writes the waiting batches: each change under its target, and the
    /// events of each batch, atomically (the hash and the channel agree on order).
    async fn write_changes(
        &self,
        conn: &mut MultiplexedConnection,
        carry: &mut Carry,
    ) -> Result<(), String> {
        while let Some(batch) = carry.changes.first() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for change in batch {
                let (field, value) = wire::seal_change(&self.cluster_key, &self.keys, change);
                if value.len() <= wire::MAX_VALUE {
                    pipe.hset(self.keys.changes(), field, value).ignore();
                }
            }
            for event in self.events(&What::Changes(batch.clone())) {
                pipe.publish(self.keys.events(), event).ignore();
            }
            timed(pipe.query_async::<()>(conn)).await?;
            let batch = carry.changes.remove(0);
            for change in batch
                .iter()
                .filter(|c| matches!(c, Change::DeleteObject { .. }))
            {
                // Tidying only (an ACL may refuse EVAL): never worth the session.
                if let Err(e) = self.drop_left_behind(conn, change).await {
                    warn!(
                        "cluster {}: the stored changes of a deleted object's parts were left in Redis ({e}); replicas that resync refuse them with a log line",
                        self.status.name
                    );
                }
            }
        }
        Ok(())
    }

    /// After this replica deleted an object: the changes of its parts still
    /// in the `changes` hash ([`wire::left_behind`]: a load balancer's
    /// settings, a pool's endpoints'), which every replica would refuse at
    /// every resync, are removed — atomically, and only while the delete is
    /// still the object's value (a peer may have created it again since).
    async fn drop_left_behind(
        &self,
        conn: &mut MultiplexedConnection,
        delete: &Change,
    ) -> Result<(), String> {
        let hash = self.keys.changes();
        let mut fields = Vec::new();
        for left in wire::left_behind(delete) {
            match left {
                wire::LeftBehind::Field(field) => fields.push(field),
                wire::LeftBehind::Matching(pattern) => {
                    let mut cursor = 0u64;
                    for _ in 0..MAX_CHANGE_FIELDS / HSCAN_COUNT as u64 + 1 {
                        let (next, pairs): (u64, Vec<String>) = timed(
                            redis::cmd("HSCAN")
                                .arg(&hash)
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(HSCAN_COUNT)
                                .query_async(conn),
                        )
                        .await?;
                        fields.extend(pairs.into_iter().step_by(2));
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        if fields.is_empty() {
            return Ok(());
        }
        let (object, sealed) = wire::seal_change(&self.cluster_key, &self.keys, delete);
        let dropped: u64 = timed(
            redis::cmd("EVAL")
                .arg(DROP_IF_DELETED)
                .arg(1)
                .arg(&hash)
                .arg(object)
                .arg(sealed)
                .arg(&fields)
                .query_async(conn),
        )
        .await?;
        if dropped > 0 {
            info!(
                "cluster {}: {dropped} stored change(s) of the deleted object's parts removed",
                self.status.name
            );
        }
        Ok(())
    }

    /// Writes pins with their idle TTL, and the events for them.
    async fn write_pins(
        &self,
        conn: &mut MultiplexedConnection,
        pins: &[SharedPin],
    ) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for pin in pins {
            let (key, value) = wire::seal_pin(&self.cluster_key, &self.keys, pin);
            if value.len() > wire::MAX_VALUE {
                continue;
            }
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(pin.ttl_ms.max(1))
                .ignore();
        }
        for event in self.events(&What::Pins(pins.to_vec())) {
            pipe.publish(self.keys.events(), event).ignore();
        }
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
            let (field, value) = wire::seal_change(&self.cluster_key, &self.keys, change);
            pipe.hset_nx(self.keys.changes(), field, value).ignore();
        }
        timed(pipe.query_async::<()>(conn)).await
    }

    /// Reads every change and pin in Redis and applies them here: each
    /// opened (signed, in range) or dropped and counted; the `changes` hash
    /// only within [`MAX_CHANGE_FIELDS`] and [`MAX_CHANGES_BYTES`], pins up
    /// to the session table's `max_sessions`.
    async fn resync(&self, conn: &mut MultiplexedConnection) -> Result<(usize, usize), String> {
        let (mut batch, inauthentic) = self.read_changes(conn).await?;
        batch.sort_by_key(|(change, _)| wire::apply_order(change));
        self.replace_inauthentic(conn, &inauthentic).await?;
        let state = self.changes.state();
        let mut applied = 0;
        for (change, size) in &batch {
            match self
                .changes
                .apply_from_cluster(std::slice::from_ref(change), state.clock.now())
            {
                Ok(_) => applied += 1,
                Err(e @ ChangeError::Invalid(_)) if change.is_object() => {
                    warn!("cluster: an object in Redis was refused here: {e}")
                }
                Err(ChangeError::Invalid(_)) => {
                    self.reject(Rejected::OutOfRange, "a stored change", *size)
                }
                Err(e) => warn!("cluster: a change in Redis was refused here: {e}"),
            }
        }
        let pins = self.read_pins(conn).await?;
        Ok((applied, pins))
    }

    /// The fields of the `changes` hash whose value did not open (forged,
    /// unsigned, or signed with a key no longer in use) and for which this
    /// replica has a value in force: overwritten with it, signed. An
    /// inauthentic value has no say, so this is not a write over a peer's;
    /// it is how stored values are signed again after the key changed.
    async fn replace_inauthentic(
        &self,
        conn: &mut MultiplexedConnection,
        fields: &std::collections::HashSet<String>,
    ) -> Result<(), String> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut n = 0;
        for change in self.changes.snapshot() {
            let (field, value) = wire::seal_change(&self.cluster_key, &self.keys, &change);
            if fields.contains(&field) && value.len() <= wire::MAX_VALUE {
                pipe.hset(self.keys.changes(), field, value).ignore();
                n += 1;
            }
        }
        if n > 0 {
            timed(pipe.query_async::<()>(conn)).await?;
            info!(
                "cluster {}: {n} stored change(s) that did not verify replaced by this replica's own, signed",
                self.status.name
            );
        }
        Ok(())
    }

    /// The changes of the `changes` hash that open, each with its stored
    /// size, when the hash is within its bounds (checked before reading
    /// it); and the fields whose value did not open.
    async fn read_changes(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(Vec<(Change, usize)>, std::collections::HashSet<String>), String> {
        let hash = self.keys.changes();
        let (fields, bytes): (u64, RedisResult<Option<u64>>) = {
            let fields = tokio::time::timeout(
                TIMEOUT,
                redis::cmd("HLEN").arg(&hash).query_async::<u64>(conn),
            )
            .await
            .map_err(|_| format!("no answer within {TIMEOUT:?}"))?;
            let fields = match fields {
                Ok(n) => n,
                // Not a hash: nothing of it can be a change (and the link
                // must not fail on it at every resync).
                Err(e) if e.to_string().contains("WRONGTYPE") => {
                    self.reject(Rejected::Malformed, "the changes key (not a hash)", 0);
                    return Ok(Default::default());
                }
                Err(e) => return Err(e.to_string()),
            };
            // MEMORY USAGE may be refused by an ACL: the field count then bounds alone.
            let bytes = tokio::time::timeout(
                TIMEOUT,
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&hash)
                    .arg("SAMPLES")
                    .arg(0)
                    .query_async::<Option<u64>>(conn),
            )
            .await
            .map_err(|_| format!("no answer within {TIMEOUT:?}"))?;
            (fields, bytes)
        };
        let bytes = bytes.ok().flatten().unwrap_or(0);
        if fields > MAX_CHANGE_FIELDS || bytes > MAX_CHANGES_BYTES {
            self.reject(
                Rejected::TooLarge,
                &format!("the changes hash ({fields} fields, not read)"),
                usize::try_from(bytes).unwrap_or(usize::MAX),
            );
            return Ok(Default::default());
        }
        let mut out = Vec::new();
        let mut inauthentic = std::collections::HashSet::new();
        let mut seen = 0u64;
        let mut cursor = 0u64;
        loop {
            let (next, pairs): (u64, Vec<Vec<u8>>) = timed(
                redis::cmd("HSCAN")
                    .arg(&hash)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(HSCAN_COUNT)
                    .query_async(conn),
            )
            .await?;
            for pair in pairs.chunks_exact(2) {
                seen += 1;
                match wire::open_change(&self.cluster_key, &self.keys, &pair[0], &pair[1]) {
                    Ok(change) => out.push((change, pair[1].len())),
                    Err(reason) => {
                        self.reject(reason, "a stored change", pair[1].len());
                        if let Ok(field) = std::str::from_utf8(&pair[0]) {
                            inauthentic.insert(field.to_string());
                        }
                    }
                }
            }
            if next == 0 || seen > MAX_CHANGE_FIELDS {
                break;
            }
            cursor = next;
        }
        Ok((out, inauthentic))
    }

    /// Takes in the stored pins that open, at most the session table's
    /// bound; each read with `GETRANGE` up to one byte past [`wire::MAX_VALUE`],
    /// so an oversized value costs no more than that.
    async fn read_pins(&self, conn: &mut MultiplexedConnection) -> Result<usize, String> {
        let state = self.changes.state();
        let most = state.sessions.max_sessions();
        let mut pins = 0;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = timed(
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
                pipe.ignore_errors();
                for k in &keys {
                    pipe.cmd("GETRANGE")
                        .arg(k)
                        .arg(0)
                        .arg(wire::MAX_VALUE)
                        .pttl(k);
                }
                let values: Vec<RedisResult<redis::Value>> = timed(pipe.query_async(conn)).await?;
                let now = state.clock.now_ms();
                for (k, answers) in keys.iter().zip(values.chunks_exact(2)) {
                    let value = match &answers[0] {
                        Ok(redis::Value::BulkString(v)) => v.as_slice(),
                        Ok(_) => continue, // gone meanwhile
                        Err(_) => {
                            self.reject(Rejected::Malformed, "a stored pin", 0);
                            continue;
                        }
                    };
                    let pttl = match &answers[1] {
                        Ok(redis::Value::Int(t)) => *t,
                        _ => continue,
                    };
                    let Ok(redis_key) = std::str::from_utf8(k) else {
                        self.reject(Rejected::Malformed, "a stored pin", value.len());
                        continue;
                    };
                    let pin = match wire::open_pin(&self.cluster_key, &self.keys, redis_key, value)
                    {
                        Ok(pin) => pin,
                        Err(reason) => {
                            self.reject(reason, "a stored pin", value.len());
                            continue;
                        }
                    };
                    if let Some(at) = wire::last_used_ms(now, pin.ttl_ms, pttl) {
                        pins += usize::from(take_in(&state, &pin, at));
                    }
                }
            }
            if next == 0 || pins >= most {
                break;
            }
            cursor = next;
        }
        Ok(pins)
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
        .cmd("HRANDFIELD")
        .arg(self.keys.replicas())
        .arg(MAX_REPLICAS)
        .arg("WITHVALUES");
        let (all,): (HashMap<Vec<u8>, Vec<u8>>,) = timed(pipe.query_async(conn)).await?;
        let mut peers = Vec::new();
        let mut gone = Vec::new();
        for (id, json) in all {
            match serde_json::from_slice::<ReplicaSeen>(&json) {
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

/// Whether a session ended because Redis refused the password or user.
fn refused_credentials(why: &str) -> bool {
    [
        "WRONGPASS",
        "NOAUTH",
        "AuthenticationFailed",
        "invalid password",
        "invalid username-password",
    ]
    .iter()
    .any(|s| why.contains(s))
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
                if refused_credentials(&why) {
                    warn!(
                        "cluster {}: Redis refused this replica's credentials ({why}): check tether.cluster.password_file / username or the redis_url; serving from this replica's own state, tether_cluster_connected 0, retrying",
                        self.status.name
                    );
                } else {
                    warn!(
                        "cluster {}: Redis is unreachable ({why}); serving from this replica's own state, tether_cluster_connected 0, retrying",
                        self.status.name
                    );
                }
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
