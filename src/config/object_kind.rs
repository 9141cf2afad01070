//! The kinds of object — monitors, pools, load balancers — that can be put
//! and deleted at run time, and their IDs: one rule for the owner of changes
//! (`crate::changes`), the admin API and Cloudflare's API
//! (`crate::cloudflare`), both of which import it from here.
//!
//! IDs are Cloudflare-shaped: the first 16 bytes of
//! SHA-256(`tether:<kind>:<name>`), 32 lower-case hex digits (a load
//! balancer's name, a host, lower-cased); the same for a file and a run-time
//! object of that name, stable across restarts, reloads and replicas.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kinds of object that can be put and deleted at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Monitor,
    Pool,
    LoadBalancer,
}

impl ObjectKind {
    /// In the order an object may refer to the ones before it.
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Monitor,
        ObjectKind::Pool,
        ObjectKind::LoadBalancer,
    ];

    /// Its section of `tether:` (`monitors`, `pools`, `load_balancers`).
    pub fn section(self) -> &'static str {
        match self {
            ObjectKind::Monitor => "monitors",
            ObjectKind::Pool => "pools",
            ObjectKind::LoadBalancer => "load_balancers",
        }
    }

    /// As a sentence names it (`load balancer`).
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Monitor => "monitor",
            ObjectKind::Pool => "pool",
            ObjectKind::LoadBalancer => "load balancer",
        }
    }

    /// As JSON, IDs and Cloudflare's paths and messages spell it (`load_balancer`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Monitor => "monitor",
            ObjectKind::Pool => "pool",
            ObjectKind::LoadBalancer => "load_balancer",
        }
    }

    /// A name as the configuration keys it: a load balancer's (a host) lower-cased.
    pub fn normalise(self, name: &str) -> String {
        match self {
            ObjectKind::LoadBalancer => name.to_ascii_lowercase(),
            _ => name.to_string(),
        }
    }
}

/// The ID of the object of `kind` named `name`: 32 lower-case hex digits, a
/// function of kind and name only.
pub fn object_id(kind: ObjectKind, name: &str) -> String {
    let digest = Sha256::digest(format!("tether:{}:{}", kind.as_str(), kind.normalise(name)));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has Cloudflare's shape: 32 hex digits.
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_stable_and_distinct_by_kind_and_name() {
        let id = object_id(ObjectKind::Pool, "web");
        assert!(is_id(&id), "{id}");
        assert!(!id.bytes().any(|b| b.is_ascii_uppercase()));
        assert_eq!(id, object_id(ObjectKind::Pool, "web"));
        assert_ne!(id, object_id(ObjectKind::Monitor, "web"));
        assert_ne!(id, object_id(ObjectKind::Pool, "web2"));
        assert_eq!(
            object_id(ObjectKind::LoadBalancer, "A.Example"),
            object_id(ObjectKind::LoadBalancer, "a.example")
        );
        assert!(!is_id("xyz"));
        assert!(!is_id(&format!("{id}0")));
        // Fixed for ever: a changed rule would change every stored ID.
        let prefix: String = Sha256::digest("tether:pool:web")[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(id, prefix);
    }
}
