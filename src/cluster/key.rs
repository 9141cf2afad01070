//! The cluster key (`tether.cluster.key_file`): read from its file's bytes,
//! and the MAC every sealed value carries ([`super::wire`] seals and opens
//! them). Apart from the wire format so that the configuration's checks can
//! read a key file without importing the messages (which name the owner of
//! changes' `Change`): no import cycles between files.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The fewest bytes of secret a cluster key file holds, after trimming.
pub const MIN_KEY_BYTES: usize = 32;
/// The MAC's domain: no other HMAC of Tether's (the cookies) can be taken for one.
const DOMAIN: &[u8] = b"tether cluster v1\0";

/// The secret every replica of a cluster signs and verifies with: the
/// bytes of `tether.cluster.key_file`, trimmed of whitespace at both ends,
/// at least [`MIN_KEY_BYTES`] of them. Never printed.
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
        let secret = bytes.trim_ascii();
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "holds {} byte(s) of secret after trimming whitespace; a cluster key needs at least {MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom | base64 > cluster.key)",
                secret.len()
            ));
        }
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
