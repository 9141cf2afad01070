//! Cloudflare's v4 Load Balancing objects (monitors, pools, load balancers)
//! as its API and its SDKs spell them, and the pure mapping between them
//! and Tether's configuration model (docs/cloudflare-api.md).
//!
//! - [`types`]: the API's JSON objects, field for field (the official
//!   Python SDK's `cloudflare/types/load_balancers/{monitor,pool,load_balancer}.py`
//!   are the reference the tests check against);
//! - [`export`]: a configuration's objects → Cloudflare's objects;
//! - [`import`]: Cloudflare's objects → the configuration's, with what could
//!   not be carried over: fields accepted but not honoured ([`Notes::dropped`])
//!   and values Tether cannot honour ([`Notes::refused`], a `400` on the API).
//!
//! IDs: Cloudflare's are 32 lower-case hex digits. [`object_id`] derives one
//! from an object's kind and name, so the same file gives the same IDs on
//! every start and every replica.

pub mod command;
pub mod export;
pub mod import;
pub mod tethers_own;
pub mod types;

use sha2::{Digest, Sha256};

/// The three kinds of object the API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Monitor,
    Pool,
    LoadBalancer,
}

impl Kind {
    /// As the API's paths and messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Monitor => "monitor",
            Kind::Pool => "pool",
            Kind::LoadBalancer => "load_balancer",
        }
    }
}

/// A Cloudflare-shaped ID (32 lower-case hex digits) for the object of
/// `kind` named `name`: the first 16 bytes of SHA-256 over
/// `tether:{kind}:{name}` (a load balancer's name lower-cased). Stable: the
/// same name has the same ID on every start and every replica. The same
/// rule as the owner of changes' `changes::object_id` (a test holds them
/// equal), which this floor cannot import.
pub fn object_id(kind: Kind, name: &str) -> String {
    let name = match kind {
        Kind::LoadBalancer => name.to_ascii_lowercase(),
        _ => name.to_string(),
    };
    let digest = Sha256::digest(format!("tether:{}:{name}", kind.name()));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has Cloudflare's shape: 32 hex digits.
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a conversion could not carry over, one line per field, each naming
/// its field path (`pools[0].check_regions: ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// Accepted but not honoured: Tether has no such setting, and leaving
    /// it out does not change where traffic goes (`proxied`, `ttl`,
    /// `check_regions`, notification fields, ...).
    pub dropped: Vec<String>,
    /// Values Tether cannot honour: routing would differ (`steering_policy:
    /// geo`, a `udp_icmp` monitor, ...). The API answers `400`.
    pub refused: Vec<String>,
}

impl Notes {
    pub fn drop(&mut self, path: &str, why: impl std::fmt::Display) {
        self.dropped.push(format!("{path}: {why}"));
    }
    pub fn refuse(&mut self, path: &str, why: impl std::fmt::Display) {
        self.refused.push(format!("{path}: {why}"));
    }
    pub fn extend(&mut self, other: Notes) {
        self.dropped.extend(other.dropped);
        self.refused.extend(other.refused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_stable_and_differ_by_kind_and_name() {
        let a = object_id(Kind::Pool, "web");
        assert!(is_id(&a), "{a}");
        assert_eq!(a, object_id(Kind::Pool, "web"));
        assert_ne!(a, object_id(Kind::Monitor, "web"));
        assert_ne!(a, object_id(Kind::Pool, "web2"));
        assert!(!is_id("xyz"));
        assert!(!is_id(&format!("{a}0")));
    }
}
