//! An independent implementation of the documented `__cflb` format (docs/affinity.md,
//! "The cookie"), so tests can mint cookies Tether must accept or reject —
//! expired ones above all, since real TTLs are at least 30 minutes.
//!
//! value = base64url-nopad( 1 | expires u64 BE | lb_id u64 BE | endpoint_id u64 BE | tag[16] ): 55 chars
//! tag   = HMAC-SHA256(key, "tether-cflb-v1" | the 33 bytes before it)[..16]
//! lb_id = H("load_balancer", name); endpoint_id = H("endpoint", pool, endpoint)
//! H     = FNV-1a 64 over each part as (len u64 LE, bytes), then splitmix64's finaliser.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn stable_hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for part in parts {
        for b in (part.len() as u64).to_le_bytes() {
            eat(b);
        }
        for &b in *part {
            eat(b);
        }
    }
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn lb_id(name: &str) -> u64 {
    stable_hash_parts(&[b"load_balancer", name.as_bytes()])
}

pub fn endpoint_id(pool: &str, endpoint: &str) -> u64 {
    stable_hash_parts(&[b"endpoint", pool.as_bytes(), endpoint.as_bytes()])
}

/// A `__cflb` value for `lb` → `pool`/`endpoint`, expiring at `expires` (unix s).
pub fn mint(key: &[u8], lb: &str, pool: &str, endpoint: &str, expires: u64) -> String {
    let mut bytes = Vec::with_capacity(49);
    bytes.push(1u8);
    bytes.extend_from_slice(&expires.to_be_bytes());
    bytes.extend_from_slice(&lb_id(lb).to_be_bytes());
    bytes.extend_from_slice(&endpoint_id(pool, endpoint).to_be_bytes());
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
    mac.update(b"tether-cflb-v1");
    mac.update(&bytes);
    let tag = mac.finalize().into_bytes();
    bytes.extend_from_slice(&tag[..16]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes a cookie keys file (one standard base64 key per line) into `dir`.
pub fn keys_file(dir: &std::path::Path, name: &str, keys: &[&[u8]]) -> String {
    let text: String = keys
        .iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k) + "\n")
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, format!("# test keys\n{text}")).unwrap();
    path.display().to_string()
}
