//! `header` affinity session keys from arbitrary requests.
//!
//! Input layout (seeds are readable text):
//!
//! - byte 0 picks the config: bit 0 is `require_all_headers`; `(byte >> 1) % 5`
//!   picks the `headers` list, one of [`SPECS`] or (4) the first line of
//!   the rest, split on `|` — arbitrary, possibly invalid entries, as a
//!   config loader bug could pass them;
//! - every remaining line (`\n`-separated) is a header, `name:value` (the
//!   value's leading spaces and tabs dropped); lines that `http` rejects as a
//!   name or value are skipped.
//!
//! Checked: `HeaderKeySpec::new` and `session_key` never panic; the key is
//! deterministic (same spec, a rebuilt spec, a cloned header map); a key under
//! `require_all_headers: true` is the same key under `false`; and for the
//! fixed specs the key equals `stable_hash_parts` over the item sequence the
//! module docs of `tether::affinity::key` describe, built here independently.

#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tether::affinity::key::HeaderKeySpec;
use tether::balance::hash::stable_hash_parts;

const LB_ID: u64 = 0x7e7e_0000_0000_0042;

/// Fixed `headers` lists.
const SPECS: [&[&str]; 4] = [
    &["X-User"],
    &["cookie"],
    &["cookie:sid,theme"],
    &["X-A", "X-B"],
];

/// What the fixed specs parse to, written out by hand.
enum Part {
    Header(&'static str),
    WholeCookie,
    Cookies(&'static [&'static str]),
}

fn expected_parts(spec: usize) -> Vec<Part> {
    match spec {
        0 => vec![Part::Header("x-user")],
        1 => vec![Part::WholeCookie],
        2 => vec![Part::Cookies(&["sid", "theme"])],
        _ => vec![Part::Header("x-a"), Part::Header("x-b")],
    }
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Every value of cookie `name`, in order, over all `Cookie` lines.
fn cookie_values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for line in h.get_all(COOKIE) {
        for pair in line.as_bytes().split(|&b| b == b';') {
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                if trim_ows(&pair[..eq]) == name.as_bytes() {
                    out.push(trim_ows(&pair[eq + 1..]));
                }
            }
        }
    }
    out
}

/// The documented key, from the documented item sequence.
fn reference_key(parts: &[Part], require_all: bool, lb_id: u64, h: &HeaderMap) -> Option<u64> {
    let present: Vec<bool> = parts
        .iter()
        .map(|p| match p {
            Part::Header(n) => h.get(*n).is_some(),
            Part::WholeCookie => h.get(COOKIE).is_some(),
            Part::Cookies(names) => {
                let has = |n: &&str| !cookie_values(h, n).is_empty();
                if require_all {
                    names.iter().all(has)
                } else {
                    names.iter().any(has)
                }
            }
        })
        .collect();
    let ok = if require_all {
        present.iter().all(|&p| p)
    } else {
        present.iter().any(|&p| p)
    };
    if parts.is_empty() || !ok {
        return None;
    }
    let mut items: Vec<Vec<u8>> = vec![lb_id.to_le_bytes().to_vec(), b"header".to_vec()];
    let tagged = |tag: u8, b: &[u8]| {
        let mut v = vec![tag];
        v.extend_from_slice(b);
        v
    };
    for (i, (part, &p)) in parts.iter().zip(&present).enumerate() {
        let mut item = vec![b'p'];
        item.extend_from_slice(&(i as u32).to_le_bytes());
        item.push(u8::from(p));
        items.push(item);
        if !p {
            continue;
        }
        match part {
            Part::Header(n) => {
                for v in h.get_all(*n) {
                    items.push(tagged(b'v', v.as_bytes()));
                }
            }
            Part::WholeCookie => {
                let joined: Vec<&[u8]> = h.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
                items.push(tagged(b'v', &joined.join(&b"; "[..])));
            }
            Part::Cookies(names) => {
                for (j, n) in names.iter().enumerate() {
                    items.push(tagged(b'c', &(j as u32).to_le_bytes()));
                    for v in cookie_values(h, n) {
                        items.push(tagged(b'v', v));
                    }
                }
            }
        }
    }
    let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
    Some(stable_hash_parts(&refs))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let require_all = mode & 1 == 1;
    let which = usize::from(mode >> 1) % 5;
    let mut lines = rest.split(|&b| b == b'\n');

    let entries: Vec<String> = match SPECS.get(which) {
        Some(spec) => spec.iter().map(|s| s.to_string()).collect(),
        None => String::from_utf8_lossy(lines.next().unwrap_or_default())
            .split('|')
            .map(str::to_string)
            .collect(),
    };

    let mut h = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = match value.iter().position(|&b| b != b' ' && b != b'\t') {
            Some(start) => &value[start..],
            None => &[],
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            h.append(n, v);
        }
    }

    let spec = HeaderKeySpec::new(&entries, require_all);
    let key = spec.session_key(LB_ID, &h);
    assert_eq!(key, spec.session_key(LB_ID, &h), "not deterministic");
    assert_eq!(
        key,
        HeaderKeySpec::new(&entries, require_all).session_key(LB_ID, &h),
        "a rebuilt spec keys differently"
    );
    assert_eq!(
        key,
        spec.session_key(LB_ID, &h.clone()),
        "a cloned map keys differently"
    );
    if require_all && key.is_some() {
        let any = HeaderKeySpec::new(&entries, false);
        assert_eq!(
            any.session_key(LB_ID, &h),
            key,
            "require_all changed a present key"
        );
    }
    if which < SPECS.len() {
        assert_eq!(
            key,
            reference_key(&expected_parts(which), require_all, LB_ID, &h),
            "key differs from the documented encoding"
        );
    }
});
