//! What the replicas of one cluster say to each other through Redis, as
//! plain data: the key names, the messages on the events channel, the
//! stored change of each target and the stored session pin. Pure: encoding,
//! signing, verifying and decoding only, no I/O ([`super::link`] moves these
//! bytes).
//!
//! Keys, all under the prefix `tether:{name}:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `changes` | hash | target → the [`Change`] in force for it (sealed JSON) |
//! | `pin:{key}` | string, expires | a session pin: [`SharedPin`] (sealed JSON), with the session's idle TTL |
//! | `replicas` | hash | replica id → its [`ReplicaSeen`] (JSON), for the admin API only |
//! | `events` | pub/sub channel | [`Event`]s (sealed JSON), in the order they were written |
//!
//! **Sealed** values carry an HMAC-SHA256 under the cluster key
//! (`tether.cluster.key_file`, [`ClusterKey`], in `key.rs`): `t1.<64 hex digits of the
//! MAC>.<JSON>`. The MAC covers the cluster name, the Redis key the value is
//! stored under (the channel for an event), the hash field (`changes`
//! only; empty otherwise) and the JSON, each length-prefixed, so a valid
//! value cannot be replayed under another key, field or cluster. A value is
//! opened in this order, and refused at the first failing step with its
//! [`Rejected`] reason: its length ([`MAX_VALUE`], before anything is
//! parsed), its form and MAC (constant-time), its JSON, then its ranges
//! (and for an event, its age: [`MAX_EVENT_SKEW_MS`]; the link also drops
//! an event it has already received, by its MAC: [`tag_of`]).
//! The `replicas` hash is not sealed: it only feeds `GET /v1/cluster`.

use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::key::ClusterKey;
use crate::changes::Change;
use crate::config::TABLE_TTL_MAX_SECS;

/// The longest event, stored change or stored pin accepted or written
/// (bytes, the seal included): 64 KiB, as an admin API request body. The
/// writer splits a batch of changes or pins over as many events as needed.
pub const MAX_VALUE: usize = 64 * 1024;
/// How far an event's `at_unix_ms` may be from the reader's clock, either
/// way: delivery takes milliseconds, replicas' clocks differ a little; an
/// event recorded and published again later is refused as stale.
pub const MAX_EVENT_SKEW_MS: u64 = 60_000;
/// Pins in one event at most (the link writes at most this many per round trip).
pub const MAX_PINS_PER_EVENT: usize = 512;
/// A pin's idle TTL at most: the longest `session_affinity_ttl` of the
/// `header` / `source_ip` affinities, whose sessions are the shared ones.
pub const MAX_PIN_TTL_MS: u64 = TABLE_TTL_MAX_SECS * 1000;

/// The seal's version tag.
const TAG: &str = "t1.";
/// `t1.` + 64 hex digits + `.`.
const SEAL_LEN: usize = TAG.len() + 64 + 1;

/// Why a value read from Redis was dropped: the `reason` label of
/// `tether_cluster_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Longer than [`MAX_VALUE`] (not parsed at all).
    TooLarge,
    /// Not a sealed value, or its JSON is not what is stored there.
    Malformed,
    /// The MAC does not verify under this cluster's key, name and place.
    BadMac,
    /// Authentic and well-formed, but a value is out of its range (a
    /// change the owner of changes refuses as invalid, a pin's TTL, too many pins).
    OutOfRange,
    /// An authentic event written more than [`MAX_EVENT_SKEW_MS`] before
    /// (or after) the reader's now, or one already received: a replay.
    Stale,
}

impl Rejected {
    pub const ALL: [Rejected; 5] = [
        Rejected::BadMac,
        Rejected::Malformed,
        Rejected::TooLarge,
        Rejected::OutOfRange,
        Rejected::Stale,
    ];
    pub fn reason(self) -> &'static str {
        match self {
            Rejected::TooLarge => "too_large",
            Rejected::Malformed => "malformed",
            Rejected::BadMac => "bad_mac",
            Rejected::OutOfRange => "out_of_range",
            Rejected::Stale => "stale",
        }
    }
    /// Its index in [`Rejected::ALL`].
    pub fn index(self) -> usize {
        match self {
            Rejected::BadMac => 0,
            Rejected::Malformed => 1,
            Rejected::TooLarge => 2,
            Rejected::OutOfRange => 3,
            Rejected::Stale => 4,
        }
    }
}

/// `json` sealed for `redis_key` / `field` (`""`: not a hash field) of cluster `name`.
pub fn seal(key: &ClusterKey, name: &str, redis_key: &str, field: &str, json: &str) -> String {
    let tag = key
        .mac(name, redis_key, field, json.as_bytes())
        .finalize()
        .into_bytes();
    let mut out = String::with_capacity(SEAL_LEN + json.len());
    out.push_str(TAG);
    for b in tag {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out.push('.');
    out.push_str(json);
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The JSON of a sealed value, when it is no longer than [`MAX_VALUE`] and
/// its MAC verifies for `redis_key` / `field` of cluster `name`.
pub fn open<'a>(
    key: &ClusterKey,
    name: &str,
    redis_key: &str,
    field: &str,
    value: &'a [u8],
) -> Result<&'a str, Rejected> {
    if value.len() > MAX_VALUE {
        return Err(Rejected::TooLarge);
    }
    if value.len() < SEAL_LEN || !value.starts_with(TAG.as_bytes()) || value[SEAL_LEN - 1] != b'.' {
        return Err(Rejected::Malformed);
    }
    let tag = tag_of(value).ok_or(Rejected::Malformed)?;
    let json = &value[SEAL_LEN..];
    key.mac(name, redis_key, field, json)
        .verify_slice(&tag)
        .map_err(|_| Rejected::BadMac)?;
    std::str::from_utf8(json).map_err(|_| Rejected::Malformed)
}

/// The MAC of a value in the sealed form (not verified): what tells one
/// event from another, to notice one received twice.
pub fn tag_of(value: &[u8]) -> Option<[u8; 32]> {
    let hex = value.get(TAG.len()..SEAL_LEN - 1)?;
    let mut tag = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        tag[i] = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(tag)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The Redis names of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    name: String,
    prefix: String,
}

impl Keys {
    pub fn new(name: &str) -> Keys {
        Keys {
            name: name.to_string(),
            prefix: format!("tether:{name}:"),
        }
    }
    /// The cluster's name (`tether.cluster.name`).
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn changes(&self) -> String {
        format!("{}changes", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    pub fn replicas(&self) -> String {
        format!("{}replicas", self.prefix)
    }
    pub fn pin(&self, key: u64) -> String {
        format!("{}pin:{key:016x}", self.prefix)
    }
    /// The `SCAN` pattern of every pin key.
    pub fn pin_pattern(&self) -> String {
        format!("{}pin:*", self.prefix)
    }
    /// The session key of a pin key (`None`: not one of ours).
    pub fn pin_key_of(&self, redis_key: &str) -> Option<u64> {
        let hex = redis_key.strip_prefix(&self.prefix)?.strip_prefix("pin:")?;
        u64::from_str_radix(hex, 16).ok()
    }
}

/// The field of the `changes` hash a change is kept under: the last change
/// of each target is the one in force.
pub fn target(change: &Change) -> String {
    match change {
        Change::SetEndpointEnabled { pool, endpoint, .. } => {
            format!("endpoint_enabled:{pool}/{endpoint}")
        }
        Change::SetEndpointWeight { pool, endpoint, .. } => {
            format!("endpoint_weight:{pool}/{endpoint}")
        }
        Change::PatchLoadBalancer { load_balancer, .. }
        | Change::SetSessionPersistence { load_balancer, .. } => {
            format!("load_balancer:{load_balancer}")
        }
        // A delete replaces the put: the last of an object's is in force.
        Change::PutObject { kind, name, .. } | Change::DeleteObject { kind, name } => {
            format!("object:{}/{}", kind.as_str(), kind.normalise(name))
        }
    }
}

/// Fields of the `changes` hash a delete leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftBehind {
    /// This field.
    Field(String),
    /// The fields matching this `HSCAN` pattern (a pool's name holds no
    /// glob character: `[A-Za-z0-9_.-]+`).
    Matching(String),
}

/// What the delete `change` leaves behind in the `changes` hash: the
/// changes of the deleted object's parts, which no replica can apply any
/// more — a load balancer's settings, a pool's endpoints' enabled flags and
/// weights. Nothing for any other change.
pub fn left_behind(change: &Change) -> Vec<LeftBehind> {
    use crate::changes::ObjectKind;
    let Change::DeleteObject { kind, name } = change else {
        return Vec::new();
    };
    let name = kind.normalise(name);
    match kind {
        ObjectKind::LoadBalancer => vec![LeftBehind::Field(format!("load_balancer:{name}"))],
        ObjectKind::Pool if crate::config::read::name_ok(&name) => vec![
            LeftBehind::Matching(format!("endpoint_enabled:{name}/*")),
            LeftBehind::Matching(format!("endpoint_weight:{name}/*")),
        ],
        _ => Vec::new(),
    }
}

/// Where a stored change goes when the whole `changes` hash is applied
/// (a resync; the hash has no order): objects first, those referred to
/// before those referring (monitors, pools, load balancers), deletes the
/// other way round, then the changes of fields, which may be of those
/// objects. Sort by it (stably).
pub fn apply_order(change: &Change) -> u8 {
    use crate::changes::ObjectKind::{LoadBalancer, Monitor, Pool};
    match change {
        Change::PutObject { kind: Monitor, .. } => 0,
        Change::PutObject { kind: Pool, .. } => 1,
        Change::PutObject {
            kind: LoadBalancer, ..
        } => 2,
        Change::DeleteObject {
            kind: LoadBalancer, ..
        } => 3,
        Change::DeleteObject { kind: Pool, .. } => 4,
        Change::DeleteObject { kind: Monitor, .. } => 5,
        _ => 6,
    }
}

/// A `header` / `source_ip` session pinned away from the hash ring's
/// choice, by names (indexes differ between configurations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPin {
    /// The session-table key, hexadecimal in JSON.
    #[serde(with = "hex_u64")]
    pub key: u64,
    pub pool: String,
    pub endpoint: String,
    /// The session's idle TTL: the pin expires in Redis after it.
    pub ttl_ms: u64,
}

/// One message on the events channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The replica that wrote it.
    pub from: String,
    /// When it was written (the writer's wall clock, unix ms; strictly
    /// increasing per writer): an event more than [`MAX_EVENT_SKEW_MS`]
    /// away from the reader's clock is stale.
    pub at_unix_ms: u64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// A batch applied on `from`, normalised (every replica applies it).
    Changes(Vec<Change>),
    /// Session pins written by `from`.
    Pins(Vec<SharedPin>),
}

impl Event {
    /// The event's JSON (unsealed).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn decode(text: &str) -> Result<Event, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// The sealed events that carry `what` from replica `from` on the events
/// channel of `keys`: one, or as many as keep each within [`MAX_VALUE`]
/// (and [`MAX_PINS_PER_EVENT`] pins). Each entry of a batch is a
/// self-contained value in force (normalised), so a batch split over
/// events means the same. An entry that alone exceeds the bound is left
/// out and returned in the second list.
pub fn seal_events(
    key: &ClusterKey,
    keys: &Keys,
    from: &str,
    at_unix_ms: u64,
    what: &What,
) -> (Vec<String>, Vec<usize>) {
    let channel = keys.events();
    let empty = Event {
        from: from.to_string(),
        at_unix_ms,
        what: match what {
            What::Changes(_) => What::Changes(Vec::new()),
            What::Pins(_) => What::Pins(Vec::new()),
        },
    }
    .encode();
    // An event's JSON is the empty one plus its entries and the commas between.
    let room = MAX_VALUE.saturating_sub(SEAL_LEN + empty.len());
    let sizes: Vec<usize> = match what {
        What::Changes(v) => v.iter().map(json_len).collect(),
        What::Pins(v) => v.iter().map(json_len).collect(),
    };
    let per_event = match what {
        What::Changes(_) => usize::MAX,
        What::Pins(_) => MAX_PINS_PER_EVENT,
    };
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut too_large = Vec::new();
    let mut used = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size > room {
            too_large.push(i);
            continue;
        }
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < per_event && used + 1 + size <= room => {
                chunk.push(i);
                used += 1 + size;
            }
            _ => {
                chunks.push(vec![i]);
                used = size;
            }
        }
    }
    let events = chunks
        .into_iter()
        .map(|chunk| {
            let part = match what {
                What::Changes(v) => What::Changes(chunk.iter().map(|&i| v[i].clone()).collect()),
                What::Pins(v) => What::Pins(chunk.iter().map(|&i| v[i].clone()).collect()),
            };
            let json = Event {
                from: from.to_string(),
                at_unix_ms,
                what: part,
            }
            .encode();
            seal(key, keys.name(), &channel, "", &json)
        })
        .collect();
    (events, too_large)
}

/// The longest JSON of one change the cluster carries from replica `from`:
/// one that fits, sealed, in an event of its own (whatever its
/// `at_unix_ms`) and so in its field of the `changes` hash too, each within
/// [`MAX_VALUE`]. The owner of changes refuses an object change longer than
/// this ([`crate::changes::Changes::set_shared_limit`]) rather than keep it
/// on one replica only.
pub fn max_change_json(from: &str) -> usize {
    let empty = Event {
        from: from.to_string(),
        at_unix_ms: u64::MAX,
        what: What::Changes(Vec::new()),
    }
    .encode();
    MAX_VALUE.saturating_sub(SEAL_LEN + empty.len())
}

fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_string(v).map_or(usize::MAX, |s| s.len())
}

/// A message of the events channel of `keys`, opened, checked fresh
/// against `now_unix_ms` and range-checked.
pub fn open_event(
    key: &ClusterKey,
    keys: &Keys,
    value: &[u8],
    now_unix_ms: u64,
) -> Result<Event, Rejected> {
    let json = open(key, keys.name(), &keys.events(), "", value)?;
    let event: Event = serde_json::from_str(json).map_err(|_| Rejected::Malformed)?;
    if event.at_unix_ms.abs_diff(now_unix_ms) > MAX_EVENT_SKEW_MS {
        return Err(Rejected::Stale);
    }
    if let What::Pins(pins) = &event.what {
        if pins.len() > MAX_PINS_PER_EVENT {
            return Err(Rejected::OutOfRange);
        }
        for pin in pins {
            pin_in_range(pin)?;
        }
    }
    Ok(event)
}

/// A change sealed for its field of the `changes` hash: (field, value).
pub fn seal_change(key: &ClusterKey, keys: &Keys, change: &Change) -> (String, String) {
    let field = target(change);
    let json = serde_json::to_string(change).unwrap_or_default();
    let value = seal(key, keys.name(), &keys.changes(), &field, &json);
    (field, value)
}

/// The change stored under `field` of the `changes` hash, opened. Its
/// ranges are the owner of changes' to check (as for an admin change).
pub fn open_change(
    key: &ClusterKey,
    keys: &Keys,
    field: &[u8],
    value: &[u8],
) -> Result<Change, Rejected> {
    if field.len() > MAX_VALUE {
        return Err(Rejected::TooLarge);
    }
    let field = std::str::from_utf8(field).map_err(|_| Rejected::Malformed)?;
    let json = open(key, keys.name(), &keys.changes(), field, value)?;
    let change: Change = serde_json::from_str(json).map_err(|_| Rejected::Malformed)?;
    if target(&change) != field {
        return Err(Rejected::Malformed);
    }
    Ok(change)
}

/// A pin sealed for its key: (Redis key, value).
pub fn seal_pin(key: &ClusterKey, keys: &Keys, pin: &SharedPin) -> (String, String) {
    let redis_key = keys.pin(pin.key);
    let json = serde_json::to_string(pin).unwrap_or_default();
    let value = seal(key, keys.name(), &redis_key, "", &json);
    (redis_key, value)
}

/// The pin stored under `redis_key`, opened and range-checked.
pub fn open_pin(
    key: &ClusterKey,
    keys: &Keys,
    redis_key: &str,
    value: &[u8],
) -> Result<SharedPin, Rejected> {
    let json = open(key, keys.name(), redis_key, "", value)?;
    let pin: SharedPin = serde_json::from_str(json).map_err(|_| Rejected::Malformed)?;
    if keys.pin_key_of(redis_key) != Some(pin.key) {
        return Err(Rejected::Malformed);
    }
    pin_in_range(&pin)?;
    Ok(pin)
}

/// A pin's TTL is one a `header` / `source_ip` session can have.
fn pin_in_range(pin: &SharedPin) -> Result<(), Rejected> {
    if (1..=MAX_PIN_TTL_MS).contains(&pin.ttl_ms) {
        Ok(())
    } else {
        Err(Rejected::OutOfRange)
    }
}

/// A replica's entry in the `replicas` hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSeen {
    pub replica: String,
    /// The admin address, when it has one.
    pub admin: Option<String>,
    /// When it last wrote this entry (it does every second while connected).
    pub seen_unix_ms: u64,
    /// When it last finished a full resync.
    pub last_sync_unix_ms: u64,
}

/// Where the table puts a pin read back from Redis with `pttl_ms` left:
/// last used so long ago that it expires when the Redis key does.
pub fn last_used_ms(now_ms: u64, ttl_ms: u64, pttl_ms: i64) -> Option<u64> {
    let left = u64::try_from(pttl_ms).ok().filter(|&l| l > 0)?;
    Some(now_ms.saturating_sub(ttl_ms.saturating_sub(left.min(ttl_ms))))
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        let k = Keys::new("shop");
        assert_eq!(k.changes(), "tether:shop:changes");
        assert_eq!(k.events(), "tether:shop:events");
        assert_eq!(k.pin(0xab), "tether:shop:pin:00000000000000ab");
        assert_eq!(k.pin_key_of(&k.pin(u64::MAX)), Some(u64::MAX));
        assert_eq!(k.pin_key_of("tether:other:pin:00000000000000ab"), None);
        assert_eq!(k.pin_key_of("tether:shop:pin:zz"), None);
        assert_eq!(k.pin_pattern(), "tether:shop:pin:*");
    }

    #[test]
    fn objects_have_one_target_for_put_and_delete_and_apply_in_reference_order() {
        use crate::changes::ObjectKind;
        let put = |kind, name: &str| Change::PutObject {
            kind,
            name: name.into(),
            value: serde_json::json!({}),
        };
        let delete = |kind, name: &str| Change::DeleteObject {
            kind,
            name: name.into(),
        };
        assert_eq!(
            target(&put(ObjectKind::LoadBalancer, "A.Example")),
            "object:load_balancer/a.example"
        );
        assert_eq!(
            target(&delete(ObjectKind::LoadBalancer, "a.example")),
            target(&put(ObjectKind::LoadBalancer, "a.example")),
            "a delete replaces the put in the hash"
        );
        let mut batch = [
            disable("a"),
            delete(ObjectKind::Monitor, "m"),
            put(ObjectKind::LoadBalancer, "x"),
            delete(ObjectKind::LoadBalancer, "y"),
            put(ObjectKind::Pool, "q"),
            put(ObjectKind::Monitor, "m2"),
            delete(ObjectKind::Pool, "r"),
        ];
        batch.sort_by_key(apply_order);
        let order: Vec<String> = batch
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .map(|v| format!("{} {}", v["change"], v["kind"]))
            .collect();
        assert_eq!(
            order,
            [
                r#""put_object" "monitor""#,
                r#""put_object" "pool""#,
                r#""put_object" "load_balancer""#,
                r#""delete_object" "load_balancer""#,
                r#""delete_object" "pool""#,
                r#""delete_object" "monitor""#,
                r#""set_endpoint_enabled" null"#,
            ]
        );
    }

    #[test]
    fn a_delete_leaves_behind_the_changes_of_its_parts() {
        use crate::changes::ObjectKind;
        let delete = |kind, name: &str| Change::DeleteObject {
            kind,
            name: name.into(),
        };
        let lb = left_behind(&delete(ObjectKind::LoadBalancer, "*.Example.com"));
        let settings = Change::PatchLoadBalancer {
            load_balancer: "*.example.com".into(),
            fields: Default::default(),
        };
        assert_eq!(lb, [LeftBehind::Field(target(&settings))]);
        let pool = left_behind(&delete(ObjectKind::Pool, "p"));
        let prefixes: Vec<&str> = pool
            .iter()
            .map(|l| match l {
                LeftBehind::Matching(p) => p.strip_suffix('*').unwrap(),
                LeftBehind::Field(f) => panic!("{f}"),
            })
            .collect();
        let of = |pool: &str| {
            [
                target(&Change::SetEndpointEnabled {
                    pool: pool.into(),
                    endpoint: "a".into(),
                    enabled: false,
                    drain_started_unix_ms: None,
                }),
                target(&Change::SetEndpointWeight {
                    pool: pool.into(),
                    endpoint: "a".into(),
                    weight: 0.5,
                }),
            ]
        };
        for (field, prefix) in of("p").iter().zip(&prefixes) {
            assert!(field.starts_with(prefix), "{field} {prefix}");
        }
        for field in of("p2") {
            assert!(prefixes.iter().all(|p| !field.starts_with(p)), "{field}");
        }
        assert!(left_behind(&delete(ObjectKind::Monitor, "m")).is_empty());
        assert!(left_behind(&disable("a")).is_empty());
    }

    #[test]
    fn events_round_trip_and_targets() {
        let change = Change::SetEndpointEnabled {
            pool: "p".into(),
            endpoint: "a".into(),
            enabled: false,
            drain_started_unix_ms: Some(1_700_000_000_123),
        };
        let e = Event {
            from: "r1".into(),
            at_unix_ms: 1_700_000_000_200,
            what: What::Changes(vec![change.clone()]),
        };
        let text = e.encode();
        assert_eq!(
            text,
            r#"{"from":"r1","at_unix_ms":1700000000200,"changes":[{"change":"set_endpoint_enabled","pool":"p","endpoint":"a","enabled":false,"drain_started_unix_ms":1700000000123}]}"#
        );
        assert_eq!(Event::decode(&text).unwrap(), e);
        assert_eq!(target(&change), "endpoint_enabled:p/a");
        let pin = SharedPin {
            key: 0x0123_4567_89ab_cdef,
            pool: "p".into(),
            endpoint: "b".into(),
            ttl_ms: 1_800_000,
        };
        let e = Event {
            from: "r2".into(),
            at_unix_ms: 1,
            what: What::Pins(vec![pin]),
        };
        let text = e.encode();
        assert!(text.contains(r#""key":"0123456789abcdef""#), "{text}");
        assert_eq!(Event::decode(&text).unwrap(), e);
        assert!(Event::decode(r#"{"from":"x","nonsense":1}"#).is_err());
        assert!(Event::decode("garbage").is_err());
    }

    #[test]
    fn a_change_within_max_change_json_is_shared_and_one_byte_more_is_not() {
        let from = "host-1234-abcd";
        let limit = max_change_json(from);
        assert!(limit > 60_000 && limit < MAX_VALUE, "{limit}");
        let sized = |len: usize| {
            let mut change = Change::PutObject {
                kind: crate::changes::ObjectKind::Monitor,
                name: "m".into(),
                value: serde_json::json!({"path": ""}),
            };
            let pad = len - json_len(&change);
            if let Change::PutObject { value, .. } = &mut change {
                value["path"] = serde_json::json!("x".repeat(pad));
            }
            assert_eq!(json_len(&change), len);
            change
        };
        let keys = Keys::new("shop");
        let fits = sized(limit);
        let (events, too_large) = seal_events(
            &key(1),
            &keys,
            from,
            u64::MAX,
            &What::Changes(vec![fits.clone()]),
        );
        assert_eq!((events.len(), too_large.len()), (1, 0));
        assert!(events[0].len() <= MAX_VALUE);
        assert!(seal_change(&key(1), &keys, &fits).1.len() <= MAX_VALUE);
        let over = sized(limit + 1);
        let (events, too_large) =
            seal_events(&key(1), &keys, from, u64::MAX, &What::Changes(vec![over]));
        assert_eq!((events.len(), too_large.len()), (0, 1));
    }

    const NOW: u64 = 1_800_000_000_000;

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_file_bytes(&[byte; 32]).unwrap()
    }

    fn pin(key: u64, ttl_ms: u64) -> SharedPin {
        SharedPin {
            key,
            pool: "p".into(),
            endpoint: "b".into(),
            ttl_ms,
        }
    }

    fn disable(endpoint: &str) -> Change {
        Change::SetEndpointEnabled {
            pool: "p".into(),
            endpoint: endpoint.into(),
            enabled: false,
            drain_started_unix_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn a_key_file_needs_32_bytes_of_secret_after_trimming() {
        let short = format!("  {}\n\n", "k".repeat(31));
        let err = ClusterKey::from_file_bytes(short.as_bytes()).unwrap_err();
        assert!(err.starts_with("holds 31 byte(s) of secret"), "{err}");
        assert!(ClusterKey::from_file_bytes(b"").is_err());
        // Whitespace around the secret does not count, nor change the key.
        let padded = format!("\n {}\n", "k".repeat(32));
        let (a, b) = (
            ClusterKey::from_file_bytes(padded.as_bytes()).unwrap(),
            ClusterKey::from_file_bytes("k".repeat(32).as_bytes()).unwrap(),
        );
        let sealed = seal(&a, "c", "tether:c:events", "", "{}");
        assert_eq!(
            open(&b, "c", "tether:c:events", "", sealed.as_bytes()),
            Ok("{}")
        );
        assert_eq!(format!("{a:?}"), "ClusterKey(..)", "never printed");
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let k = key(1);
        let v = seal(
            &k,
            "shop",
            "tether:shop:changes",
            "endpoint_enabled:p/a",
            r#"{"x":1}"#,
        );
        assert!(v.starts_with("t1."), "{v}");
        assert_eq!(v.len(), SEAL_LEN + 7);
        let ok = |key: &ClusterKey, name: &str, rk: &str, field: &str, v: &str| {
            open(key, name, rk, field, v.as_bytes()).map(str::to_string)
        };
        assert_eq!(
            ok(
                &k,
                "shop",
                "tether:shop:changes",
                "endpoint_enabled:p/a",
                &v
            ),
            Ok(r#"{"x":1}"#.to_string())
        );
        // Another key, cluster, Redis key or field: a replay elsewhere fails.
        let bad = Err(Rejected::BadMac);
        assert_eq!(
            ok(
                &key(2),
                "shop",
                "tether:shop:changes",
                "endpoint_enabled:p/a",
                &v
            ),
            bad
        );
        assert_eq!(
            ok(
                &k,
                "shop2",
                "tether:shop:changes",
                "endpoint_enabled:p/a",
                &v
            ),
            bad
        );
        assert_eq!(
            ok(&k, "shop", "tether:shop:events", "endpoint_enabled:p/a", &v),
            bad
        );
        assert_eq!(
            ok(
                &k,
                "shop",
                "tether:shop:changes",
                "endpoint_enabled:p/b",
                &v
            ),
            bad
        );
        // Tampering with the JSON or the MAC.
        let tampered = v.replace(r#""x":1"#, r#""x":2"#);
        assert_eq!(
            ok(
                &k,
                "shop",
                "tether:shop:changes",
                "endpoint_enabled:p/a",
                &tampered
            ),
            bad
        );
        let flipped = format!("t1.{}{}", if &v[3..4] == "0" { "1" } else { "0" }, &v[4..]);
        assert_eq!(
            ok(
                &k,
                "shop",
                "tether:shop:changes",
                "endpoint_enabled:p/a",
                &flipped
            ),
            bad
        );
        // Not sealed at all: unsigned JSON, a bad tag, non-hex digits, too short.
        let malformed = Err(Rejected::Malformed);
        for v in [
            r#"{"from":"x","at_unix_ms":1,"changes":[]}"#.to_string(),
            v.replacen("t1.", "t2.", 1),
            v.replacen(&v[3..5], "zz", 1),
            v.replacen(&v[3..5], "AB", 1),
            "t1.00".to_string(),
            String::new(),
        ] {
            assert_eq!(
                ok(
                    &k,
                    "shop",
                    "tether:shop:changes",
                    "endpoint_enabled:p/a",
                    &v
                ),
                malformed,
                "{v}"
            );
        }
    }

    #[test]
    fn oversized_values_are_refused_before_anything_is_parsed() {
        let k = key(1);
        let json = format!(
            r#"{{"from":"{}","at_unix_ms":1,"pins":[]}}"#,
            "x".repeat(MAX_VALUE)
        );
        let big = seal(&k, "c", "tether:c:events", "", &json);
        assert_eq!(
            open_event(&k, &Keys::new("c"), big.as_bytes(), NOW),
            Err(Rejected::TooLarge)
        );
        let garbage = vec![b'{'; 20 * 1024 * 1024];
        assert_eq!(
            open_event(&k, &Keys::new("c"), &garbage, NOW),
            Err(Rejected::TooLarge)
        );
        // Exactly at the bound: opened (and then judged on its MAC).
        let at = vec![b'x'; MAX_VALUE];
        assert_eq!(
            open(&k, "c", "tether:c:events", "", &at),
            Err(Rejected::Malformed)
        );
    }

    #[test]
    fn events_are_sealed_for_their_channel_and_split_within_the_bound() {
        let (k, keys) = (key(1), Keys::new("shop"));
        let what = What::Changes(vec![disable("a"), disable("b")]);
        let (events, too_large) = seal_events(&k, &keys, "r1", NOW, &what);
        assert_eq!((events.len(), too_large.len()), (1, 0));
        let e = open_event(&k, &keys, events[0].as_bytes(), NOW).unwrap();
        assert_eq!(
            e,
            Event {
                from: "r1".into(),
                at_unix_ms: NOW,
                what
            }
        );
        // Another cluster's channel, or the key of another cluster: refused.
        assert_eq!(
            open_event(&k, &Keys::new("other"), events[0].as_bytes(), NOW),
            Err(Rejected::BadMac)
        );
        assert_eq!(
            open_event(&key(3), &keys, events[0].as_bytes(), NOW),
            Err(Rejected::BadMac)
        );
        // A valid MAC over JSON that is not an event: malformed.
        let not_event = seal(
            &k,
            "shop",
            &keys.events(),
            "",
            r#"{"from":"r1","nonsense":1}"#,
        );
        assert_eq!(
            open_event(&k, &keys, not_event.as_bytes(), NOW),
            Err(Rejected::Malformed)
        );

        // 3,000 pins: split by count (512) and size, each event within the bound.
        let pins: Vec<SharedPin> = (0..3000).map(|i| pin(i, 60_000)).collect();
        let (events, too_large) = seal_events(&k, &keys, "r1", NOW, &What::Pins(pins.clone()));
        assert!(too_large.is_empty());
        assert!(events.len() >= 6, "{}", events.len());
        let mut back = Vec::new();
        for e in &events {
            assert!(e.len() <= MAX_VALUE);
            match open_event(&k, &keys, e.as_bytes(), NOW).unwrap().what {
                What::Pins(p) => {
                    assert!(p.len() <= MAX_PINS_PER_EVENT);
                    back.extend(p);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, pins);
        // Long names: split by size; an entry that alone is too large is left out.
        let long: Vec<Change> = (0..40)
            .map(|i| disable(&format!("{i}-{}", "e".repeat(4000))))
            .chain([disable(&"x".repeat(MAX_VALUE))])
            .collect();
        let (events, too_large) = seal_events(&k, &keys, "r1", NOW, &What::Changes(long));
        assert_eq!(too_large, [40]);
        assert!(events.len() >= 3, "{}", events.len());
        let n: usize = events
            .iter()
            .map(|e| {
                assert!(e.len() <= MAX_VALUE, "{}", e.len());
                match open_event(&k, &keys, e.as_bytes(), NOW).unwrap().what {
                    What::Changes(c) => c.len(),
                    What::Pins(_) => 0,
                }
            })
            .sum();
        assert_eq!(n, 40);
    }

    #[test]
    fn events_too_old_or_too_far_ahead_are_stale() {
        let (k, keys) = (key(1), Keys::new("shop"));
        let what = What::Changes(vec![disable("a")]);
        for (at, fresh) in [
            (NOW, true),
            (NOW - MAX_EVENT_SKEW_MS, true),
            (NOW + MAX_EVENT_SKEW_MS, true),
            (NOW - MAX_EVENT_SKEW_MS - 1, false),
            (NOW + MAX_EVENT_SKEW_MS + 1, false),
            (0, false),
            (u64::MAX, false),
        ] {
            let (events, _) = seal_events(&k, &keys, "r1", at, &what);
            let opened = open_event(&k, &keys, events[0].as_bytes(), NOW);
            assert_eq!(opened.is_ok(), fresh, "{at}: {opened:?}");
            if !fresh {
                assert_eq!(opened, Err(Rejected::Stale));
            }
        }
        // Every event has its own tag: how a replay within the window is told.
        let (a, _) = seal_events(&k, &keys, "r1", NOW, &what);
        let (b, _) = seal_events(&k, &keys, "r1", NOW + 1, &what);
        let (ta, tb) = (tag_of(a[0].as_bytes()), tag_of(b[0].as_bytes()));
        assert!(ta.is_some() && ta != tb);
        assert_eq!(tag_of(a[0].as_bytes()), ta);
        assert_eq!(tag_of(b"t1.zz"), None);
        assert_eq!(tag_of(b"{}"), None);
    }

    #[test]
    fn pins_are_range_checked() {
        let (k, keys) = (key(1), Keys::new("shop"));
        for (ttl, ok) in [
            (0, false),
            (1, true),
            (MAX_PIN_TTL_MS, true),
            (MAX_PIN_TTL_MS + 1, false),
            (u64::MAX, false),
        ] {
            let (rk, v) = seal_pin(&k, &keys, &pin(7, ttl));
            let opened = open_pin(&k, &keys, &rk, v.as_bytes());
            assert_eq!(opened.is_ok(), ok, "{ttl}: {opened:?}");
            if !ok {
                assert_eq!(opened, Err(Rejected::OutOfRange));
            }
            let (events, _) = seal_events(&k, &keys, "r", NOW, &What::Pins(vec![pin(7, ttl)]));
            assert_eq!(open_event(&k, &keys, events[0].as_bytes(), NOW).is_ok(), ok);
        }
        // A pin replayed under another pin's key: its MAC is for the first.
        let (_, v) = seal_pin(&k, &keys, &pin(7, 1000));
        assert_eq!(
            open_pin(&k, &keys, &keys.pin(8), v.as_bytes()),
            Err(Rejected::BadMac)
        );
        // Sealed by a replica for a key that does not match its content.
        let json = serde_json::to_string(&pin(7, 1000)).unwrap();
        let v = seal(&k, "shop", &keys.pin(8), "", &json);
        assert_eq!(
            open_pin(&k, &keys, &keys.pin(8), v.as_bytes()),
            Err(Rejected::Malformed)
        );
        // More pins in one event than a replica ever writes: out of range.
        let many = Event {
            from: "r".into(),
            at_unix_ms: NOW,
            what: What::Pins((0..513).map(|i| pin(i, 1000)).collect()),
        };
        let v = seal(&k, "shop", &keys.events(), "", &many.encode());
        assert_eq!(
            open_event(&k, &keys, v.as_bytes(), NOW),
            Err(Rejected::OutOfRange)
        );
    }

    #[test]
    fn stored_changes_are_bound_to_their_field() {
        let (k, keys) = (key(1), Keys::new("shop"));
        let (field, v) = seal_change(&k, &keys, &disable("a"));
        assert_eq!(field, "endpoint_enabled:p/a");
        assert_eq!(
            open_change(&k, &keys, field.as_bytes(), v.as_bytes()),
            Ok(disable("a"))
        );
        // Copied under another target's field: refused.
        assert_eq!(
            open_change(&k, &keys, b"endpoint_enabled:p/b", v.as_bytes()),
            Err(Rejected::BadMac)
        );
        // Sealed (by a replica's bug) under a field that is not its target.
        let json = serde_json::to_string(&disable("a")).unwrap();
        let v = seal(&k, "shop", &keys.changes(), "endpoint_enabled:p/b", &json);
        assert_eq!(
            open_change(&k, &keys, b"endpoint_enabled:p/b", v.as_bytes()),
            Err(Rejected::Malformed)
        );
        assert_eq!(
            open_change(&k, &keys, b"f", b"{}"),
            Err(Rejected::Malformed)
        );
        assert_eq!(
            open_change(&k, &keys, b"f", &vec![b'x'; MAX_VALUE + 1]),
            Err(Rejected::TooLarge)
        );
    }

    #[test]
    fn pins_read_back_expire_with_their_redis_key() {
        // 30 s TTL, 10 s left in Redis: last used 20 s ago.
        assert_eq!(last_used_ms(100_000, 30_000, 10_000), Some(80_000));
        assert_eq!(last_used_ms(100_000, 30_000, 30_000), Some(100_000));
        assert_eq!(last_used_ms(100_000, 30_000, 99_000), Some(100_000));
        // -1 (no expiry) or -2 (gone): not used.
        assert_eq!(last_used_ms(100_000, 30_000, -1), None);
        assert_eq!(last_used_ms(100_000, 30_000, -2), None);
        assert_eq!(last_used_ms(100_000, 30_000, 0), None);
    }
}
