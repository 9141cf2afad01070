//! An independent implementation of the documented `__cflb` format (docs/affinity.md,
//! "The cookie"), so tests can mint cookies Tether must accept or reject —
//! expired ones above all, since real TTLs are at least 30 minutes.
//!
//! value = base64url-nopad( 2 | expires u64 BE | lb_id u64 BE | endpoint_id u64 BE | nonce u64 BE | tag[16] ): 66 chars
//! tag   = HMAC-SHA256(key, "tether-cflb-v1" | the 33 bytes before it)[..16]
//! v1    = base64url-nopad( 1 | expires | lb_id | endpoint_id | tag[16] ), tag over its 25 bytes: 55 chars
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

/// A `__cflb` value (version 2) for `lb` → `pool`/`endpoint`, expiring at
/// `expires` (unix s), for a new session (a random nonce).
pub fn mint(key: &[u8], lb: &str, pool: &str, endpoint: &str, expires: u64) -> String {
    mint_nonce(key, lb, pool, endpoint, expires, Some(rand_nonce()))
}

/// A version 1 `__cflb` value (no nonce), as Tether made before version 2.
pub fn mint_v1(key: &[u8], lb: &str, pool: &str, endpoint: &str, expires: u64) -> String {
    mint_nonce(key, lb, pool, endpoint, expires, None)
}

fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_now());
    h.finish()
}

/// The nonce of a version 2 value verified with `key` (`None`: not one).
pub fn nonce(key: &[u8], value: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    if raw.len() != 49 || raw[0] != 2 {
        return None;
    }
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
    mac.update(b"tether-cflb-v1");
    mac.update(&raw[..33]);
    mac.verify_truncated_left(&raw[33..]).ok()?;
    Some(u64::from_be_bytes(raw[25..33].try_into().unwrap()))
}

/// A `__cflb` value with this nonce (`None`: version 1).
pub fn mint_nonce(
    key: &[u8],
    lb: &str,
    pool: &str,
    endpoint: &str,
    expires: u64,
    nonce: Option<u64>,
) -> String {
    let mut bytes = Vec::with_capacity(49);
    bytes.push(if nonce.is_some() { 2u8 } else { 1u8 });
    bytes.extend_from_slice(&expires.to_be_bytes());
    bytes.extend_from_slice(&lb_id(lb).to_be_bytes());
    bytes.extend_from_slice(&endpoint_id(pool, endpoint).to_be_bytes());
    if let Some(n) = nonce {
        bytes.extend_from_slice(&n.to_be_bytes());
    }
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
