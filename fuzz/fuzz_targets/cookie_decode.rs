//! `__cflb` cookie values and `Cookie` headers from arbitrary bytes.
//!
//! - The bytes, when UTF-8, are a cookie value: `CookieKeys::decode` must not
//!   panic, and a value it accepts (`Valid` or `Expired`: the MAC verified)
//!   must be exactly what `encode` makes of the decoded pin — the format is
//!   canonical, so no second spelling of a cookie is accepted. The expiry
//!   boundary is checked on the same pin.
//! - The bytes, split on `\n`, are `Cookie` header values (each one that
//!   `HeaderValue::from_bytes` accepts): `cflb_values` must not panic (every
//!   value it yields goes through the decode checks above), and after
//!   `strip_cflb` no `__cflb` pair is left in any header (checked on the raw
//!   bytes, so non-UTF-8 headers count), every other pair is kept, other
//!   headers are untouched and a second strip changes nothing.

#![no_main]

use std::sync::OnceLock;

use http::header::{ACCEPT, COOKIE, HOST};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tether::affinity::cookie::{CookieKeys, Decoded};
use tether::affinity::cookie_header::{cflb_values, cookies_without_cflb};

/// The clock for `decode`: 2023-11-14. Seeds expire after it (`Valid`) or
/// before it (`Expired`).
const NOW: u64 = 1_700_000_000;

/// What the proxy does to a request's headers before they go upstream
/// (`strip_own_cookie`): the `Cookie` headers replaced by
/// `cookies_without_cflb`'s, when one has a `__cflb`. Whether it changed any.
fn strip_cflb(h: &mut HeaderMap) -> bool {
    let Some(kept) = cookies_without_cflb(h) else {
        return false;
    };
    h.remove(COOKIE);
    for v in kept {
        h.append(COOKIE, v);
    }
    true
}

fn keys() -> &'static CookieKeys {
    static KEYS: OnceLock<CookieKeys> = OnceLock::new();
    KEYS.get_or_init(|| CookieKeys::from_keys(vec![[7u8; 32].to_vec()]))
}

fn check_value(keys: &CookieKeys, s: &str) {
    match keys.decode(s, NOW) {
        Decoded::Invalid => {
            // Invalid means the MAC (or the shape) failed: no clock changes that.
            assert_eq!(keys.decode(s, 0), Decoded::Invalid, "{s:?}");
            assert_eq!(keys.decode(s, u64::MAX), Decoded::Invalid, "{s:?}");
        }
        d @ (Decoded::Valid(pin) | Decoded::Expired(pin)) => {
            assert_eq!(
                keys.encode(&pin),
                s,
                "accepted a value that is not the canonical encoding of {d:?}"
            );
            assert_eq!(matches!(d, Decoded::Valid(_)), NOW < pin.expires, "{d:?}");
            assert_eq!(keys.decode(s, pin.expires), Decoded::Expired(pin));
            if pin.expires > 0 {
                assert_eq!(keys.decode(s, pin.expires - 1), Decoded::Valid(pin));
            }
        }
    }
}

/// Trimmed of spaces and tabs, as the cookie code trims (independent copy).
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// `(number of __cflb pairs, the other non-empty pairs)` over all `Cookie`
/// headers, by the rule in docs/affinity.md: split on `;`, a pair's name is what comes
/// before its first `=`, trimmed; names compare exactly.
fn census(h: &HeaderMap) -> (usize, Vec<Vec<u8>>) {
    let mut cflb = 0;
    let mut others = Vec::new();
    for v in h.get_all(COOKIE) {
        for seg in v.as_bytes().split(|&b| b == b';') {
            let seg = trim_ows(seg);
            if seg.is_empty() {
                continue;
            }
            let is_cflb = match seg.iter().position(|&b| b == b'=') {
                Some(eq) => trim_ows(&seg[..eq]) == b"__cflb",
                None => false,
            };
            if is_cflb {
                cflb += 1;
            } else {
                others.push(seg.to_vec());
            }
        }
    }
    (cflb, others)
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();

    if let Ok(s) = std::str::from_utf8(data) {
        check_value(keys, s);
    }

    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_static("example.com"));
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(COOKIE, v);
        }
    }
    h.insert(ACCEPT, HeaderValue::from_static("*/*"));

    let values: Vec<&str> = cflb_values(&h).collect();
    for v in &values {
        check_value(keys, v);
    }
    let all_utf8 = h
        .get_all(COOKIE)
        .iter()
        .all(|v| std::str::from_utf8(v.as_bytes()).is_ok());
    let (cflb_before, others_before) = census(&h);
    if all_utf8 {
        assert_eq!(
            values.len(),
            cflb_before,
            "cflb_values missed or invented a pair"
        );
    } else {
        assert!(values.len() <= cflb_before);
    }

    let mut stripped = h.clone();
    let changed = strip_cflb(&mut stripped);
    assert_eq!(changed, cflb_before > 0);
    let (cflb_after, others_after) = census(&stripped);
    assert_eq!(
        cflb_after, 0,
        "a __cflb pair survived strip_cflb: {stripped:?}"
    );
    assert_eq!(cflb_values(&stripped).count(), 0);
    assert_eq!(
        others_after, others_before,
        "strip_cflb lost or changed a pair"
    );
    assert_eq!(stripped.get(HOST), h.get(HOST));
    assert_eq!(stripped.get(ACCEPT), h.get(ACCEPT));
    if !changed {
        assert_eq!(stripped, h);
    }
    let again = stripped.clone();
    assert!(!strip_cflb(&mut stripped));
    assert_eq!(stripped, again);
});
