//! The cluster key (`tether.cluster.key_file`): read from its file's bytes,
//! and the MAC every sealed value carries ([`super::wire`] seals and opens
//! them). The key file's bytes are judged by the configuration
//! ([`crate::config::key_secret`], a floor below), so the configuration's
//! check of `key_file` imports nothing of the cluster.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The MAC's domain: no other HMAC of Tether's (the cookies) can be taken for one.
const DOMAIN: &[u8] = b"tether cluster v1\0";

/// The secret every replica of a cluster signs and verifies with: the
/// bytes of `tether.cluster.key_file`, trimmed of whitespace at both ends,
/// at least [`crate::config::MIN_KEY_BYTES`] of them. Never printed.
#[derive(Clone)]
pub struct ClusterKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// The key held by a key file's bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<ClusterKey, String> {
        let secret = crate::config::key_secret(bytes)?;
        let mac = <HmacSha256 as Mac>::new_from_slice(secret)
            .map_err(|e| format!("unusable key: {e}"))?;
        Ok(ClusterKey { mac })
    }

    /// The MAC of `json` stored under `redis_key` / `field` of cluster `name`.
    pub(super) fn mac(&self, name: &str, redis_key: &str, field: &str, json: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        for part in [
            name.as_bytes(),
            redis_key.as_bytes(),
            field.as_bytes(),
            json,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}
