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
//! every start and every replica: the owner of changes' rule and
//! [`ObjectKind`], defined once in `config::object_kind`.

pub mod command;
pub mod export;
pub mod import;
pub mod tethers_own;
pub mod types;

pub use crate::config::object_kind::{is_id, object_id, ObjectKind};

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
