//! The `__cflb` cookie value (SPEC 4.2): opaque, fixed size, tamper-evident.
//!
//! Version 2, made by this version: 49 raw bytes, sent as 66 characters of
//! unpadded base64url:
//!
//! | bytes  | field                                                      |
//! |--------|------------------------------------------------------------|
//! | 0      | version, `2`                                               |
//! | 1..9   | `expires`, unix seconds, big-endian                        |
//! | 9..17  | `lb_id`, big-endian                                        |
//! | 17..25 | `endpoint_id`, big-endian                                  |
//! | 25..33 | `nonce`: random per session, big-endian                    |
//! | 33..49 | tag: HMAC-SHA256(key, `"tether-cflb-v1"` ‖ bytes 0..33)[..16] |
//!
//! Version 1 (41 bytes, 55 characters: the same without the nonce) is still
//! decoded, so cookies issued before the nonce existed stay valid until they
//! expire; [`Pin::nonce`] is then `None`.
//!
//! The ids are computed by the caller from names (never addresses); the codec
//! treats them as opaque numbers. The first key signs, every key verifies, so
//! keys can be rotated by prepending a new one and dropping the oldest later.
//! A value that does not decode or verify is [`Decoded::Invalid`] — the caller
//! treats it as absent; nothing here errors or panics on client input.

use std::fmt;
use std::path::Path;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: the MAC input starts with this, so a key shared with
/// anything else can never produce a valid cookie by accident.
const DOMAIN: &[u8] = b"tether-cflb-v1";
const VERSION: u8 = 2;
const V1: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 8 + 8 + 8 + 8;
const V1_PAYLOAD_LEN: usize = 1 + 8 + 8 + 8;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = PAYLOAD_LEN + TAG_LEN;
const V1_RAW_LEN: usize = V1_PAYLOAD_LEN + TAG_LEN;
/// `ceil(49 * 8 / 6)`: the only length an unpadded encoding of 49 bytes has.
const VALUE_LEN: usize = (RAW_LEN * 8).div_ceil(6);
/// `ceil(41 * 8 / 6)`: version 1's length.
const V1_VALUE_LEN: usize = (V1_RAW_LEN * 8).div_ceil(6);
/// Shortest key accepted from the keys file.
const MIN_KEY_LEN: usize = 16;

/// Key-file decoders: standard and URL-safe alphabets, padding optional.
const KEY_FILE_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const KEY_FILE_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a cookie says: which load balancer, which endpoint, until when, and
/// which session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub lb_id: u64,
    pub endpoint_id: u64,
    /// Unix seconds; the pin is expired from this second on.
    pub expires: u64,
    /// The session's identity, random when the session began and kept by
    /// every re-pin. `None`: a version 1 cookie (and [`CookieKeys::encode`]
    /// then writes version 1, for tests of the old format).
    pub nonce: Option<u64>,
}

impl Pin {
    /// The session's stable hash: the nonce's, or for a version 1 cookie the
    /// hash of the whole value (every v1 session on one endpoint shares it).
    pub fn session_key(&self, value: &str) -> u64 {
        match self.nonce {
            Some(nonce) => nonce_session_key(nonce),
            None => crate::balance::hash::stable_hash(value.as_bytes()),
        }
    }
}

/// The stable hash of a session whose cookie carries `nonce`:
/// `H("session", nonce as 8 bytes big-endian)`.
pub fn nonce_session_key(nonce: u64) -> u64 {
    crate::balance::hash::stable_hash_parts(&[b"session", &nonce.to_be_bytes()])
}

/// The outcome of [`CookieKeys::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Authentic and not expired.
    Valid(Pin),
    /// Authentic, but `now >= expires`.
    Expired(Pin),
    /// Wrong length, alphabet or version, or no key verifies it: treat as absent.
    Invalid,
}

/// The MAC keys: the first signs, all verify.
///
/// Each key is kept as an HMAC state that has already absorbed the key and
/// the domain prefix, so signing or verifying only clones it (no key setup).
#[derive(Clone)]
pub struct CookieKeys {
    macs: Vec<HmacSha256>,
}

impl fmt::Debug for CookieKeys {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieKeys")
            .field("keys", &self.macs.len())
            .finish()
    }
}

impl CookieKeys {
    /// Reads `cookie_keys_file`: one base64 key per line (standard or URL-safe
    /// alphabet, padding optional), at least 16 bytes each; blank lines and
    /// lines starting with `#` are ignored. The first key signs.
    pub fn from_file(path: &Path) -> Result<CookieKeys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    fn parse(text: &str) -> Result<CookieKeys, String> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let key = KEY_FILE_STANDARD
                .decode(line)
                .or_else(|_| KEY_FILE_URL_SAFE.decode(line))
                .map_err(|_| format!("line {n}: not base64"))?;
            if key.len() < MIN_KEY_LEN {
                return Err(format!(
                    "line {n}: key is {} bytes, at least {MIN_KEY_LEN} needed",
                    key.len()
                ));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no key in the file".to_string());
        }
        Ok(Self::from_keys(keys))
    }

    /// One fresh random 32-byte key: cookies will not survive a restart nor
    /// be shared between instances (the caller warns about that).
    pub fn random() -> CookieKeys {
        let key: [u8; 32] = rand::random();
        Self::from_keys(vec![key.to_vec()])
    }

    /// Keys as given, the first signing. Panics when `keys` is empty.
    pub fn from_keys(keys: Vec<Vec<u8>>) -> CookieKeys {
        assert!(!keys.is_empty(), "CookieKeys needs at least one key");
        let macs = keys
            .iter()
            .map(|k| {
                // HMAC takes keys of any length; this cannot fail.
                let mut mac = <HmacSha256 as Mac>::new_from_slice(k)
                    .expect("HMAC accepts keys of any length");
                mac.update(DOMAIN);
                mac
            })
            .collect();
        CookieKeys { macs }
    }

    /// How many keys (≥ 1).
    pub fn count(&self) -> usize {
        self.macs.len()
    }

    /// The cookie value for `pin`, signed with the first key: 66 characters of
    /// unpadded base64url (version 2), or 55 (version 1) when `pin.nonce` is
    /// `None`.
    pub fn encode(&self, pin: &Pin) -> String {
        let mut raw = [0u8; RAW_LEN];
        let payload_len = match pin.nonce {
            Some(nonce) => {
                raw[0] = VERSION;
                raw[25..33].copy_from_slice(&nonce.to_be_bytes());
                PAYLOAD_LEN
            }
            None => {
                raw[0] = V1;
                V1_PAYLOAD_LEN
            }
        };
        raw[1..9].copy_from_slice(&pin.expires.to_be_bytes());
        raw[9..17].copy_from_slice(&pin.lb_id.to_be_bytes());
        raw[17..25].copy_from_slice(&pin.endpoint_id.to_be_bytes());
        let tag = self.macs[0]
            .clone()
            .chain_update(&raw[..payload_len])
            .finalize()
            .into_bytes();
        raw[payload_len..payload_len + TAG_LEN].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(&raw[..payload_len + TAG_LEN])
    }

    /// Decodes and verifies a cookie value. Never allocates, never panics.
    /// The MAC is checked before the expiry: an unauthenticated value is
    /// `Invalid` whatever it claims.
    pub fn decode(&self, value: &str, now_unix: u64) -> Decoded {
        let (version, raw_len, payload_len) = match value.len() {
            VALUE_LEN => (VERSION, RAW_LEN, PAYLOAD_LEN),
            V1_VALUE_LEN => (V1, V1_RAW_LEN, V1_PAYLOAD_LEN),
            _ => return Decoded::Invalid,
        };
        let mut buf = [0u8; 64];
        match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut buf) {
            Ok(n) if n == raw_len => {}
            _ => return Decoded::Invalid,
        }
        let (payload, rest) = buf.split_at(payload_len);
        let tag = &rest[..TAG_LEN];
        if payload[0] != version {
            return Decoded::Invalid;
        }
        let authentic = self.macs.iter().any(|mac| {
            mac.clone()
                .chain_update(payload)
                .verify_truncated_left(tag)
                .is_ok()
        });
        if !authentic {
            return Decoded::Invalid;
        }
        let pin = Pin {
            expires: be_u64(&payload[1..9]),
            lb_id: be_u64(&payload[9..17]),
            endpoint_id: be_u64(&payload[17..25]),
            nonce: (version == VERSION).then(|| be_u64(&payload[25..33])),
        };
        if now_unix >= pin.expires {
            Decoded::Expired(pin)
        } else {
            Decoded::Valid(pin)
        }
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;

    fn key(b: u8) -> Vec<u8> {
        vec![b; 32]
    }

    fn pin() -> Pin {
        Pin {
            lb_id: 0x0123_4567_89ab_cdef,
            endpoint_id: 0xfedc_ba98_7654_3210,
            expires: NOW + 82_800,
            nonce: Some(0x1122_3344_5566_7788),
        }
    }

    fn raw_of(value: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(value).unwrap()
    }

    #[test]
    fn round_trip() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let v = keys.encode(&pin());
        assert_eq!((RAW_LEN, VALUE_LEN, v.len()), (49, 66, 66));
        assert!(v
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(keys.decode(&v, NOW), Decoded::Valid(pin()));
        let raw = raw_of(&v);
        assert_eq!(raw.len(), RAW_LEN);
        assert_eq!(raw[0], 2);
        assert_eq!(raw[25..33], 0x1122_3344_5566_7788u64.to_be_bytes());
        // Deterministic: the same pin and key give the same value.
        assert_eq!(keys.encode(&pin()), v);
        // Extreme values survive.
        for p in [
            Pin {
                lb_id: 0,
                endpoint_id: 0,
                expires: u64::MAX,
                nonce: Some(0),
            },
            Pin {
                lb_id: u64::MAX,
                endpoint_id: u64::MAX,
                expires: 1,
                nonce: Some(u64::MAX),
            },
        ] {
            let v = keys.encode(&p);
            assert_eq!(v.len(), VALUE_LEN);
            assert_eq!(keys.decode(&v, 0), Decoded::Valid(p));
        }
    }

    #[test]
    fn version_1_cookies_still_decode_and_differ_from_version_2() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let old = Pin {
            nonce: None,
            ..pin()
        };
        let v1 = keys.encode(&old);
        assert_eq!((V1_RAW_LEN, V1_VALUE_LEN, v1.len()), (41, 55, 55));
        assert_eq!(raw_of(&v1)[0], 1);
        assert_eq!(keys.decode(&v1, NOW), Decoded::Valid(old));
        assert_eq!(keys.decode(&v1, old.expires), Decoded::Expired(old));
        // The documented v1 layout, byte for byte (what earlier versions made).
        let mut raw = vec![1u8];
        raw.extend_from_slice(&old.expires.to_be_bytes());
        raw.extend_from_slice(&old.lb_id.to_be_bytes());
        raw.extend_from_slice(&old.endpoint_id.to_be_bytes());
        let tag = <HmacSha256 as Mac>::new_from_slice(&key(1))
            .unwrap()
            .chain_update(DOMAIN)
            .chain_update(&raw)
            .finalize()
            .into_bytes();
        raw.extend_from_slice(&tag[..16]);
        assert_eq!(URL_SAFE_NO_PAD.encode(&raw), v1);
        // A v1 payload relabelled as v2 (or the reverse) fails.
        let mut m = raw_of(&v1);
        m[0] = 2;
        assert_eq!(
            keys.decode(&URL_SAFE_NO_PAD.encode(&m), NOW),
            Decoded::Invalid
        );
        let mut m = raw_of(&keys.encode(&pin()));
        m[0] = 1;
        assert_eq!(
            keys.decode(&URL_SAFE_NO_PAD.encode(&m), NOW),
            Decoded::Invalid
        );
    }

    #[test]
    fn session_keys_follow_the_nonce_not_the_endpoint() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let a = pin();
        let b = Pin {
            nonce: Some(7),
            ..pin()
        };
        let (va, vb) = (keys.encode(&a), keys.encode(&b));
        assert_ne!(a.session_key(&va), b.session_key(&vb));
        // Re-pinned elsewhere, later: the same session.
        let moved = Pin {
            endpoint_id: 99,
            expires: a.expires + 60,
            ..a
        };
        assert_eq!(a.session_key(&va), moved.session_key(&keys.encode(&moved)));
        // Version 1: the hash of the value.
        let old = Pin { nonce: None, ..a };
        let v1 = keys.encode(&old);
        assert_eq!(
            old.session_key(&v1),
            crate::balance::hash::stable_hash(v1.as_bytes())
        );
    }

    #[test]
    fn random_keys_differ_and_work() {
        let a = CookieKeys::random();
        let b = CookieKeys::random();
        assert_eq!(a.count(), 1);
        let v = a.encode(&pin());
        assert_eq!(a.decode(&v, NOW), Decoded::Valid(pin()));
        assert_eq!(b.decode(&v, NOW), Decoded::Invalid);
        assert_eq!(format!("{a:?}"), "CookieKeys { keys: 1 }");
    }

    #[test]
    fn rotation() {
        let a = CookieKeys::from_keys(vec![key(0xa)]);
        let ba = CookieKeys::from_keys(vec![key(0xb), key(0xa)]);
        let b = CookieKeys::from_keys(vec![key(0xb)]);
        assert_eq!(ba.count(), 2);
        // Signed with A, still verified after B was put in front.
        let old = a.encode(&pin());
        assert_eq!(ba.decode(&old, NOW), Decoded::Valid(pin()));
        // [B, A] signs with B.
        let new = ba.encode(&pin());
        assert_eq!(new, b.encode(&pin()));
        assert_ne!(new, old);
        assert_eq!(b.decode(&new, NOW), Decoded::Valid(pin()));
        assert_eq!(a.decode(&new, NOW), Decoded::Invalid);
        // A dropped: its values are invalid.
        assert_eq!(b.decode(&old, NOW), Decoded::Invalid);
    }

    #[test]
    fn expiry_boundary() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let p = pin();
        let v = keys.encode(&p);
        assert_eq!(keys.decode(&v, 0), Decoded::Valid(p));
        assert_eq!(keys.decode(&v, p.expires - 1), Decoded::Valid(p));
        assert_eq!(keys.decode(&v, p.expires), Decoded::Expired(p));
        assert_eq!(keys.decode(&v, p.expires + 1), Decoded::Expired(p));
        assert_eq!(keys.decode(&v, u64::MAX), Decoded::Expired(p));
        // expires = 0 is always expired.
        let z = Pin { expires: 0, ..p };
        assert_eq!(keys.decode(&keys.encode(&z), 0), Decoded::Expired(z));
    }

    #[test]
    fn mac_is_checked_before_expiry() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let other = CookieKeys::from_keys(vec![key(2)]);
        let v = other.encode(&Pin {
            expires: 5,
            ..pin()
        });
        assert_eq!(keys.decode(&v, 10), Decoded::Invalid);
        assert_eq!(
            other.decode(&v, 10),
            Decoded::Expired(Pin {
                expires: 5,
                ..pin()
            })
        );
    }

    #[test]
    fn modified_fields_fail_the_mac() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let v = keys.encode(&pin());
        let raw = raw_of(&v);
        // Rewrite each field (the tag kept) and re-encode.
        for (range, new) in [
            (1..9, (NOW + 10_000_000).to_be_bytes()),
            (9..17, 42u64.to_be_bytes()),
            (17..25, 43u64.to_be_bytes()),
        ] {
            let mut m = raw.clone();
            m[range].copy_from_slice(&new);
            assert_eq!(
                keys.decode(&URL_SAFE_NO_PAD.encode(&m), NOW),
                Decoded::Invalid
            );
        }
        // A wrong version is rejected even with a matching tag.
        let mut m = raw.clone();
        m[0] = 3;
        let tag = keys.macs[0]
            .clone()
            .chain_update(&m[..PAYLOAD_LEN])
            .finalize()
            .into_bytes();
        m[PAYLOAD_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        assert_eq!(
            keys.decode(&URL_SAFE_NO_PAD.encode(&m), NOW),
            Decoded::Invalid
        );
    }

    #[test]
    fn every_truncation_is_invalid() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let v = keys.encode(&pin());
        for n in 0..v.len() {
            assert_eq!(keys.decode(&v[..n], NOW), Decoded::Invalid, "prefix {n}");
        }
        // …and so is anything appended.
        for extra in ["A", "=", "AA", " ", "\0"] {
            assert_eq!(keys.decode(&format!("{v}{extra}"), NOW), Decoded::Invalid);
        }
    }

    #[test]
    fn every_bit_flip_is_invalid() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let raw = raw_of(&keys.encode(&pin()));
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut m = raw.clone();
                m[byte] ^= 1 << bit;
                let v = URL_SAFE_NO_PAD.encode(&m);
                assert_eq!(
                    keys.decode(&v, NOW),
                    Decoded::Invalid,
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn every_character_substitution_is_invalid() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let v = keys.encode(&pin());
        let raw = raw_of(&v);
        let mut candidates: Vec<char> = (0u8..=127).map(char::from).collect();
        candidates.extend(['é', '€', '\u{10FFFF}']);
        for i in 0..v.len() {
            for &c in &candidates {
                let mut s = String::with_capacity(v.len() + 4);
                s.push_str(&v[..i]);
                s.push(c);
                s.push_str(&v[i + 1..]);
                if s == v {
                    continue;
                }
                match keys.decode(&s, NOW) {
                    Decoded::Invalid => {}
                    other => {
                        // Only possible through base64's unused low bits of the
                        // last character: then the bytes must be identical.
                        assert_eq!(raw_of(&s), raw, "pos {i} char {c:?} gave {other:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_alphabet_or_padding_is_invalid() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let p = Pin {
            lb_id: u64::MAX,
            endpoint_id: u64::MAX,
            expires: u64::MAX,
            nonce: Some(u64::MAX),
        };
        let v = keys.encode(&p);
        assert_eq!(keys.decode(&v, NOW), Decoded::Valid(p));
        // The standard alphabet spelling of the same bytes.
        let std = base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw_of(&v));
        if std != v {
            assert_eq!(keys.decode(&std, NOW), Decoded::Invalid);
        }
        let padded = base64::engine::general_purpose::URL_SAFE.encode(raw_of(&v));
        assert_eq!(keys.decode(&padded, NOW), Decoded::Invalid);
        assert_eq!(keys.decode("", NOW), Decoded::Invalid);
        assert_eq!(keys.decode(&"A".repeat(VALUE_LEN), NOW), Decoded::Invalid);
        assert_eq!(
            keys.decode(&format!("{}A", "é".repeat(27)), NOW),
            Decoded::Invalid
        );
    }

    #[test]
    fn key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let k16 = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let k32_nopad = base64::engine::general_purpose::STANDARD_NO_PAD.encode([8u8; 32]);
        let k_url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 24]);
        std::fs::write(
            &path,
            format!("# current key first\n\n  {k16}  \n#old\n{k32_nopad}\r\n\n{k_url}\n"),
        )
        .unwrap();
        let keys = CookieKeys::from_file(&path).unwrap();
        assert_eq!(keys.count(), 3);
        // The first key signs; every key verifies.
        let first = CookieKeys::from_keys(vec![vec![7u8; 16]]);
        let v = keys.encode(&pin());
        assert_eq!(v, first.encode(&pin()));
        for k in [vec![8u8; 32], vec![0xfbu8; 24]] {
            let old = CookieKeys::from_keys(vec![k]).encode(&pin());
            assert_eq!(keys.decode(&old, NOW), Decoded::Valid(pin()));
        }

        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            CookieKeys::from_file(&path).unwrap_err()
        };
        assert_eq!(
            err(&format!("{k16}\n\n  not*base64\n")),
            "line 3: not base64"
        );
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 8]);
        assert_eq!(
            err(&format!("# c\n\n{short}\n")),
            "line 3: key is 8 bytes, at least 16 needed"
        );
        assert_eq!(
            err(&format!("{k16} {k16}\n")),
            "line 1: not base64",
            "one key per line"
        );
        assert_eq!(err(""), "no key in the file");
        assert_eq!(err("# only a comment\n\n   \n"), "no key in the file");

        let missing = dir.path().join("missing");
        let e = CookieKeys::from_file(&missing).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        let io = std::fs::read(&missing).unwrap_err().to_string();
        assert!(e.contains(&io), "{e} / {io}");
    }

    /// `cargo test --release --bin tether -- --ignored --nocapture cookie`
    #[test]
    #[ignore]
    fn cookie_decode_cost() {
        let keys = CookieKeys::from_keys(vec![key(1)]);
        let rotated = CookieKeys::from_keys(vec![key(2), key(3), key(1)]);
        let v = keys.encode(&pin());
        const N: u32 = 100_000;
        for (name, k) in [("1 key", &keys), ("3 keys, signer last", &rotated)] {
            let start = crate::clock::stopwatch();
            for _ in 0..N {
                let d = k.decode(std::hint::black_box(&v), std::hint::black_box(NOW));
                assert!(matches!(d, Decoded::Valid(_)));
            }
            let per = start.elapsed() / N;
            println!("cookie decode ({name}): {per:?} per valid value");
        }
        let start = crate::clock::stopwatch();
        for _ in 0..N {
            std::hint::black_box(keys.encode(std::hint::black_box(&pin())));
        }
        println!("cookie encode: {:?} per value", start.elapsed() / N);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_are_invalid(s in ".{0,200}") {
            let keys = CookieKeys::from_keys(vec![key(1)]);
            let d = keys.decode(&s, NOW);
            prop_assert_eq!(d, Decoded::Invalid);
        }

        #[test]
        fn base64ish_strings_are_invalid(s in "[A-Za-z0-9_=+/-]{50,60}") {
            let keys = CookieKeys::from_keys(vec![key(1)]);
            prop_assert_eq!(keys.decode(&s, NOW), Decoded::Invalid);
        }

        #[test]
        fn long_strings_are_invalid(s in "[A-Za-z0-9_-]{56,5000}") {
            let keys = CookieKeys::from_keys(vec![key(1)]);
            prop_assert_eq!(keys.decode(&s, NOW), Decoded::Invalid);
        }

        #[test]
        fn only_produced_values_decode(
            lb_id: u64, endpoint_id: u64, expires: u64, now: u64, nonce: u64,
            pos in 0usize..VALUE_LEN, s in ".{0,3}",
        ) {
            let keys = CookieKeys::from_keys(vec![key(1)]);
            let p = Pin { lb_id, endpoint_id, expires, nonce: Some(nonce) };
            let v = keys.encode(&p);
            let expect = if now >= expires { Decoded::Expired(p) } else { Decoded::Valid(p) };
            prop_assert_eq!(keys.decode(&v, now), expect);
            // Splice arbitrary text in: the result decodes only if it is
            // byte-for-byte a value we produced.
            let mut m = String::new();
            m.push_str(&v[..pos]);
            m.push_str(&s);
            m.push_str(&v[(pos + 1).min(v.len())..]);
            match keys.decode(&m, now) {
                Decoded::Invalid => {}
                d => {
                    prop_assert_eq!(d, expect);
                    prop_assert_eq!(raw_of(&m), raw_of(&v));
                }
            }
        }
    }
}
