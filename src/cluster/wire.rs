//! What the replicas of one cluster say to each other through Redis, as
//! plain data: the key names, the messages on the events channel, the
//! stored change of each target and the stored session pin. Pure: encoding
//! and decoding only, no I/O ([`super::link`] moves these bytes).
//!
//! Keys, all under the prefix `tether:{name}:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `changes` | hash | target → the [`Change`] in force for it (JSON) |
//! | `pin:{key}` | string, expires | a session pin: [`StoredPin`] (JSON), with the session's idle TTL |
//! | `replicas` | hash | replica id → its [`ReplicaSeen`] (JSON), for the admin API |
//! | `events` | pub/sub channel | [`Event`]s (JSON), in the order they were written |

use serde::{Deserialize, Serialize};

use crate::changes::Change;

/// The Redis names of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(name: &str) -> Keys {
        Keys {
            prefix: format!("tether:{name}:"),
        }
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
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn decode(text: &str) -> Result<Event, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
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
    fn events_round_trip_and_targets() {
        let change = Change::SetEndpointEnabled {
            pool: "p".into(),
            endpoint: "a".into(),
            enabled: false,
            drain_started_unix_ms: Some(1_700_000_000_123),
        };
        let e = Event {
            from: "r1".into(),
            what: What::Changes(vec![change.clone()]),
        };
        let text = e.encode();
        assert_eq!(
            text,
            r#"{"from":"r1","changes":[{"change":"set_endpoint_enabled","pool":"p","endpoint":"a","enabled":false,"drain_started_unix_ms":1700000000123}]}"#
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
            what: What::Pins(vec![pin]),
        };
        let text = e.encode();
        assert!(text.contains(r#""key":"0123456789abcdef""#), "{text}");
        assert_eq!(Event::decode(&text).unwrap(), e);
        assert!(Event::decode(r#"{"from":"x","nonsense":1}"#).is_err());
        assert!(Event::decode("garbage").is_err());
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
