//! The `__cflb` cookie on the wire (SPEC 4.1): reading it from `Cookie`
//! request headers, stripping it before the request goes upstream, and the
//! `Set-Cookie` line of a response. Pure functions on plain `http` types.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::{SameSite, Secure};

/// The cookie's name, as Cloudflare spells it.
pub const COOKIE_NAME: &str = "__cflb";

/// Every `__cflb` value in every `Cookie` header, in order (HTTP/2 clients
/// split cookies over several headers). Names are compared exactly, as
/// browsers do; a value in double quotes is unquoted; pairs without `=` and
/// headers that are not UTF-8 are skipped. Does not allocate.
pub fn cflb_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|s| s.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (trim_ows(name) == COOKIE_NAME).then(|| unquote(trim_ows(value)))
        })
}

/// One `Cookie` header value without its `__cflb` pairs: `None` when nothing
/// else is left. A value without `__cflb` comes back as it was (a cheap clone).
pub fn without_cflb(v: &HeaderValue) -> Option<HeaderValue> {
    if !has_cflb(v.as_bytes()) {
        return Some(v.clone());
    }
    let mut out = Vec::with_capacity(v.len());
    for seg in v.as_bytes().split(|&b| b == b';') {
        let seg = trim_ows_bytes(seg);
        if seg.is_empty() || is_cflb_pair(seg) {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(seg);
    }
    if out.is_empty() {
        return None;
    }
    // Pieces of a valid header value joined by "; " are valid: no error.
    let mut nv = HeaderValue::from_bytes(&out).ok()?;
    nv.set_sensitive(v.is_sensitive());
    Some(nv)
}

/// The `Cookie` header values the endpoint gets (SPEC 3.4: never Tether's
/// `__cflb`): `None` when no `Cookie` header has a `__cflb` pair (nothing to
/// change, nothing allocated); else every header's value without its
/// `__cflb` pairs, in order, the ones left empty dropped. A header that had
/// one is rebuilt from its other pairs, unchanged and in order, joined with
/// `"; "`; the others come back as they were. Works on the raw bytes, so a
/// `__cflb` next to non-UTF-8 cookies is removed too.
pub fn cookies_without_cflb(headers: &HeaderMap) -> Option<Vec<HeaderValue>> {
    let values = headers.get_all(COOKIE);
    if !values.iter().any(|v| has_cflb(v.as_bytes())) {
        return None;
    }
    Some(values.iter().filter_map(without_cflb).collect())
}

/// The `SameSite` attribute actually sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSiteValue {
    Lax,
    Strict,
    None,
}

impl SameSiteValue {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSiteValue::Lax => "Lax",
            SameSiteValue::Strict => "Strict",
            SameSiteValue::None => "None",
        }
    }
}

/// The attributes of the `Set-Cookie` line, resolved from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieAttributes {
    pub secure: bool,
    pub samesite: SameSiteValue,
    /// Seconds (`session_affinity_ttl`).
    pub max_age: u64,
}

/// SPEC 4.1: `Secure` for `Always`, never for `Never`, for `Auto` when
/// `always_use_https`; `SameSite` as given, or for `Auto` `None` when
/// `always_use_https` and `Lax` otherwise.
pub fn resolve(
    samesite: SameSite,
    secure: Secure,
    always_use_https: bool,
    max_age: u64,
) -> CookieAttributes {
    let secure = match secure {
        Secure::Always => true,
        Secure::Never => false,
        Secure::Auto => always_use_https,
    };
    let samesite = match samesite {
        SameSite::Lax => SameSiteValue::Lax,
        SameSite::Strict => SameSiteValue::Strict,
        SameSite::None => SameSiteValue::None,
        SameSite::Auto if always_use_https => SameSiteValue::None,
        SameSite::Auto => SameSiteValue::Lax,
    };
    CookieAttributes {
        secure,
        samesite,
        max_age,
    }
}

impl CookieAttributes {
    /// What follows the value in the `Set-Cookie` line,
    /// `; Path=/; Max-Age=<n>; HttpOnly; SameSite=<..>[; Secure]`: built
    /// once per load balancer ([`crate::state::LbState`]), not per response.
    pub fn tail(&self) -> Box<str> {
        format!(
            "; Path=/; Max-Age={}; HttpOnly; SameSite={}{}",
            self.max_age,
            self.samesite.as_str(),
            if self.secure { "; Secure" } else { "" }
        )
        .into()
    }
}

/// `__cflb=<value>; Path=/; Max-Age=<n>; HttpOnly; SameSite=<..>[; Secure]`:
/// the value and a [`CookieAttributes::tail`], in one allocation.
pub fn cookie_line(value: &str, tail: &str) -> String {
    let mut line = String::with_capacity(COOKIE_NAME.len() + 1 + value.len() + tail.len());
    line.push_str(COOKIE_NAME);
    line.push('=');
    line.push_str(value);
    line.push_str(tail);
    line
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn trim_ows_bytes(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn unquote(v: &str) -> &str {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner,
        None => v,
    }
}

/// `seg` (trimmed) is a `__cflb=…` pair.
fn is_cflb_pair(seg: &[u8]) -> bool {
    match seg.iter().position(|&b| b == b'=') {
        Some(eq) => trim_ows_bytes(&seg[..eq]) == COOKIE_NAME.as_bytes(),
        None => false,
    }
}

fn has_cflb(value: &[u8]) -> bool {
    value
        .split(|&b| b == b';')
        .any(|seg| is_cflb_pair(trim_ows_bytes(seg)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("example.com"));
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        h
    }

    fn cookies(h: &HeaderMap) -> Vec<&str> {
        h.get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    fn values(h: &HeaderMap) -> Vec<&str> {
        cflb_values(h).collect()
    }

    #[test]
    fn reads_every_value_in_every_header() {
        let h = map(&["a=1; __cflb=one", "__cflb=two;b=2", "c=3", "__cflb=three"]);
        assert_eq!(values(&h), ["one", "two", "three"]);
        assert_eq!(values(&map(&[])), Vec::<&str>::new());
        assert_eq!(values(&map(&["a=1; b=2"])), Vec::<&str>::new());
    }

    #[test]
    fn reads_quoted_and_spaced_values() {
        let h = map(&[
            "__cflb=\"quoted\"; __cflb= spaced ;\t__cflb=\"",
            "__cflb=\"\"",
        ]);
        assert_eq!(values(&h), ["quoted", "spaced", "\"", ""]);
        // '=' inside the value belongs to the value.
        assert_eq!(values(&map(&["__cflb=a=b"])), ["a=b"]);
    }

    #[test]
    fn similar_names_are_other_cookies() {
        let h = map(&["x__cflb=1; __cflb2=2; __CFLB=3; _cflb=4; __cflb_=5; cflb=6"]);
        assert_eq!(values(&h), Vec::<&str>::new());
        assert_eq!(cookies_without_cflb(&h), None);
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        let h = map(&["__cflb; =x; ;;__cflb ; a; __cflb=ok"]);
        assert_eq!(values(&h), ["ok"]);
    }

    #[test]
    fn non_utf8_headers_are_skipped_but_stripped() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"a=\xff\xfe; __cflb=hidden; b=2").unwrap(),
        );
        h.append(COOKIE, HeaderValue::from_static("__cflb=seen"));
        assert_eq!(values(&h), ["seen"]);
        let kept = cookies_without_cflb(&h).expect("a __cflb to strip");
        let left: Vec<&[u8]> = kept.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(left, [&b"a=\xff\xfe; b=2"[..]]);
        // Alone in a non-UTF-8 header, it is stripped too.
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"a=\xff; __cflb=hidden").unwrap(),
        );
        let kept = cookies_without_cflb(&h).expect("a __cflb to strip");
        assert_eq!(kept, [HeaderValue::from_bytes(b"a=\xff").unwrap()]);
    }

    #[test]
    fn strip_keeps_others_in_order() {
        let h = map(&[
            "a=1; __cflb=x; b=\"two words\"; x__cflb=3",
            "__cflb=y",
            "c=3;d=4",
            "e=5;__cflb=z;f=6;__cflb=w",
        ]);
        let kept = cookies_without_cflb(&h).expect("a __cflb to strip");
        let h = map(&kept.iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>());
        assert_eq!(
            cookies(&h),
            [
                "a=1; b=\"two words\"; x__cflb=3",
                "c=3;d=4", // untouched: no __cflb in it
                "e=5; f=6",
            ]
        );
        assert_eq!(values(&h), Vec::<&str>::new());
        assert_eq!(cookies_without_cflb(&h), None);
    }

    #[test]
    fn strip_only_cookie_removes_the_header() {
        assert_eq!(cookies_without_cflb(&map(&["__cflb=x"])), Some(vec![]));
        let h = map(&[" __cflb=x ;  ; __cflb=y;", "__cflb=z"]);
        assert_eq!(cookies_without_cflb(&h), Some(vec![]));
        let h = map(&["__cflb=x", "a=1"]);
        assert_eq!(
            cookies_without_cflb(&h),
            Some(vec![HeaderValue::from_static("a=1")])
        );
    }

    #[test]
    fn strip_without_cflb_is_a_no_op() {
        for cs in [&[][..], &["a=1"], &["a=1; b=2", " c=3 ;;"], &["__cflb"]] {
            assert_eq!(cookies_without_cflb(&map(cs)), None);
        }
    }

    #[test]
    fn strip_keeps_sensitivity() {
        let mut h = HeaderMap::new();
        let mut v = HeaderValue::from_static("a=1; __cflb=x");
        v.set_sensitive(true);
        h.insert(COOKIE, v);
        let kept = cookies_without_cflb(&h).expect("a __cflb to strip");
        assert!(kept[0].is_sensitive());
    }

    #[test]
    fn resolve_matrix() {
        use SameSiteValue as V;
        let cases = [
            // (samesite, secure, always_use_https) -> (samesite, secure)
            (SameSite::Auto, Secure::Auto, false, V::Lax, false),
            (SameSite::Auto, Secure::Auto, true, V::None, true),
            (SameSite::Auto, Secure::Always, false, V::Lax, true),
            (SameSite::Auto, Secure::Always, true, V::None, true),
            (SameSite::Auto, Secure::Never, false, V::Lax, false),
            (SameSite::Auto, Secure::Never, true, V::None, false),
            (SameSite::Lax, Secure::Auto, false, V::Lax, false),
            (SameSite::Lax, Secure::Auto, true, V::Lax, true),
            (SameSite::Lax, Secure::Always, false, V::Lax, true),
            (SameSite::Lax, Secure::Always, true, V::Lax, true),
            (SameSite::Lax, Secure::Never, false, V::Lax, false),
            (SameSite::Lax, Secure::Never, true, V::Lax, false),
            (SameSite::Strict, Secure::Auto, false, V::Strict, false),
            (SameSite::Strict, Secure::Auto, true, V::Strict, true),
            (SameSite::Strict, Secure::Always, false, V::Strict, true),
            (SameSite::Strict, Secure::Always, true, V::Strict, true),
            (SameSite::Strict, Secure::Never, false, V::Strict, false),
            (SameSite::Strict, Secure::Never, true, V::Strict, false),
            (SameSite::None, Secure::Auto, false, V::None, false),
            (SameSite::None, Secure::Auto, true, V::None, true),
            (SameSite::None, Secure::Always, false, V::None, true),
            (SameSite::None, Secure::Always, true, V::None, true),
            (SameSite::None, Secure::Never, false, V::None, false),
            (SameSite::None, Secure::Never, true, V::None, false),
        ];
        for (ss, sec, https, want_ss, want_sec) in cases {
            assert_eq!(
                resolve(ss, sec, https, 82_800),
                CookieAttributes {
                    secure: want_sec,
                    samesite: want_ss,
                    max_age: 82_800
                },
                "{ss:?} {sec:?} always_use_https={https}"
            );
        }
    }

    #[test]
    fn set_cookie_text() {
        let a = resolve(SameSite::Auto, Secure::Auto, false, 82_800);
        assert_eq!(
            cookie_line("VALUE", &a.tail()),
            "__cflb=VALUE; Path=/; Max-Age=82800; HttpOnly; SameSite=Lax"
        );
        let a = resolve(SameSite::Auto, Secure::Auto, true, 1800);
        assert_eq!(
            cookie_line("v-_1", &a.tail()),
            "__cflb=v-_1; Path=/; Max-Age=1800; HttpOnly; SameSite=None; Secure"
        );
        let a = resolve(SameSite::Strict, Secure::Always, false, 604_800);
        let line = cookie_line("x", &a.tail());
        assert_eq!(
            line,
            "__cflb=x; Path=/; Max-Age=604800; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(HeaderValue::from_str(&line).is_ok());
    }

    /// Non-empty segments that are not `__cflb` pairs, over all headers.
    fn other_pairs(h: &HeaderMap) -> usize {
        h.get_all(COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .map(trim_ows_bytes)
            .filter(|s| !s.is_empty() && !is_cflb_pair(s))
            .count()
    }

    fn any_cflb(h: &HeaderMap) -> bool {
        h.get_all(COOKIE).iter().any(|v| has_cflb(v.as_bytes()))
    }

    fn segment() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("__cflb".to_string()),
            Just(" __cflb".to_string()),
            Just("__CFLB".to_string()),
            Just("x__cflb".to_string()),
            Just("__cflb2".to_string()),
            Just("".to_string()),
            "[a-zA-Z_ \t]{0,8}",
        ];
        let value = "[ -:<-~\t]{0,12}"; // printable ASCII without ';'
        (name, prop::option::of(value)).prop_map(|(n, v)| match v {
            Some(v) => format!("{n}={v}"),
            None => n,
        })
    }

    fn header() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(segment(), 0..6).prop_map(|s| s.join(";").into_bytes()),
            "[ -~]{0,80}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..60),
        ]
    }

    proptest! {
        #[test]
        fn strip_removes_all_and_keeps_the_rest(hs in prop::collection::vec(header(), 0..5)) {
            let mut h = HeaderMap::new();
            for bytes in &hs {
                if let Ok(v) = HeaderValue::from_bytes(bytes) {
                    h.append(COOKIE, v);
                }
            }
            let had = any_cflb(&h);
            let others = other_pairs(&h);
            let _ = cflb_values(&h).count();
            let before = h.clone();

            let kept = cookies_without_cflb(&h);
            prop_assert_eq!(kept.is_some(), had);
            if let Some(kept) = kept {
                h.remove(COOKIE);
                for v in kept {
                    h.append(COOKIE, v);
                }
            }
            prop_assert!(!any_cflb(&h));
            prop_assert_eq!(cflb_values(&h).count(), 0);
            prop_assert_eq!(other_pairs(&h), others);
            if !had {
                prop_assert_eq!(&h, &before);
            }
            prop_assert!(h.get_all(COOKIE).iter().all(|v| !trim_ows_bytes(v.as_bytes()).is_empty()
                || before.get_all(COOKIE).iter().any(|b| b == v)));
            prop_assert_eq!(cookies_without_cflb(&h), None);
        }
    }
}
