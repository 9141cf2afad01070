//! The path rules see: a request path normalised as Cloudflare's "URL
//! normalization" does before its rules run (docs/rules.md). Pure; the
//! request sent upstream is never rewritten with it.
//!
//! In order:
//!
//! 1. percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`) are
//!    decoded, every other percent-encoding is upper-cased (`%2f` → `%2F`;
//!    `%2F` itself is never decoded), and a `%` that starts no encoding is
//!    encoded (`%25`), so that normalising twice changes nothing more;
//! 2. `\` becomes `/` and successive slashes are merged into one;
//! 3. dot segments are removed (RFC 3986 5.2.4): `/a/./b` → `/a/b`,
//!    `/a/b/../c` → `/a/c`, and `..` above the root stays at the root.
//!
//! Slashes are merged before dot segments are removed, as NGINX, Tomcat and
//! Go's `path.Clean` resolve a path: `/x//../admin` is `/admin`, the
//! resource such a server serves for it.
//!
//! A path that needs none of this (the common case) is borrowed, not copied.

use std::borrow::Cow;

/// `raw` (a path as sent, without the query) as rules see it. A path that
/// does not start with `/` (`*`) is left as it is.
pub fn normalise_path(raw: &str) -> Cow<'_, str> {
    if !raw.starts_with('/') || !needs_work(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    let decoded = decode(raw.as_bytes());
    let merged = merge_slashes(&decoded);
    let clean = remove_dot_segments(&merged);
    // Only ASCII was replaced by ASCII, so the bytes are still UTF-8.
    Cow::Owned(
        String::from_utf8(clean)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// `raw` (path and query as sent, `/a/b?c=d`) with its path normalised by
/// [`normalise_path`]; the query is left untouched. Borrowed when the path
/// needs no change.
pub fn normalise_uri(raw: &str) -> Cow<'_, str> {
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    match (normalise_path(path), query) {
        (Cow::Borrowed(_), _) => Cow::Borrowed(raw),
        (Cow::Owned(p), None) => Cow::Owned(p),
        (Cow::Owned(mut p), Some(q)) => {
            p.push('?');
            p.push_str(q);
            Cow::Owned(p)
        }
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XY` at the start of `s` encodes.
fn encoded(s: &[u8]) -> Option<u8> {
    match s {
        [b'%', h, l, ..] => Some(hex(*h)? << 4 | hex(*l)?),
        _ => None,
    }
}

/// Whether [`normalise_path`] would change `p` (one pass, no allocation).
fn needs_work(p: &[u8]) -> bool {
    p.iter().enumerate().any(|(i, &b)| match b {
        b'%' => match encoded(&p[i..]) {
            Some(v) => unreserved(v) || p[i + 1..i + 3].iter().any(u8::is_ascii_lowercase),
            None => true,
        },
        b'\\' => true,
        b'/' => {
            let rest = &p[i + 1..];
            rest.first() == Some(&b'/')
                || matches!(
                    rest,
                    [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
                )
        }
        _ => false,
    })
}

/// Step 1, and `\` → `/`.
fn decode(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() + 2);
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'%' => match encoded(&p[i..]) {
                Some(v) if unreserved(v) => {
                    out.push(v);
                    i += 3;
                }
                Some(_) => {
                    out.push(b'%');
                    out.push(p[i + 1].to_ascii_uppercase());
                    out.push(p[i + 2].to_ascii_uppercase());
                    i += 3;
                }
                None => {
                    out.extend_from_slice(b"%25");
                    i += 1;
                }
            },
            b'\\' => {
                out.push(b'/');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn merge_slashes(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

/// RFC 3986 5.2.4 on a path that starts with `/`: each segment is kept, or
/// dropped (`.`), or drops the one before it (`..`). A path that ends in a
/// dot segment keeps its trailing slash (`/a/b/..` → `/a/`).
fn remove_dot_segments(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    let segments = p.strip_prefix(b"/").unwrap_or(p).split(|&b| b == b'/');
    let mut trailing_slash = false;
    for segment in segments {
        trailing_slash = false;
        match segment {
            b"." => trailing_slash = true,
            b".." => {
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
                trailing_slash = true;
            }
            _ => {
                out.push(b'/');
                out.extend_from_slice(segment);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cases() {
        for (raw, seen) in [
            // Unchanged: borrowed.
            ("/", "/"),
            ("/admin", "/admin"),
            ("/a/b.c/d..e/.f/..g/", "/a/b.c/d..e/.f/..g/"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%20", "/%20"),
            ("*", "*"),
            ("", ""),
            // The four ways around `starts_with(path, "/admin")`.
            ("/%61dmin", "/admin"),
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            // Encoded dots are dot segments.
            ("/%2e%2e/admin", "/admin"),
            ("/x/%2E%2e/admin", "/admin"),
            ("/x/.%2e/admin", "/admin"),
            // Above the root stays at the root.
            ("/a/b/../../..", "/"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/.", "/a/"),
            ("/.", "/"),
            // Reserved characters stay encoded, in upper case.
            ("/a%2fb", "/a%2Fb"),
            ("/a%2f..%2fadmin", "/a%2F..%2Fadmin"),
            ("/%3a%3A", "/%3A%3A"),
            ("/%7e%5F%2D%41", "/~_-A"),
            // A `%` that starts no encoding is encoded.
            ("/100%", "/100%25"),
            ("/%zz", "/%25zz"),
            ("/%%32e", "/%252e"),
            // Slashes merged, backslashes are slashes, before dot segments.
            ("/a///b//", "/a/b/"),
            ("/x//../admin", "/admin"),
            ("/\\admin", "/admin"),
            ("/x\\..\\admin", "/admin"),
            // Non-ASCII passes through.
            ("/%61/é/../b", "/a/b"),
        ] {
            assert_eq!(normalise_path(raw), seen, "{raw:?}");
        }
        assert!(matches!(normalise_path("/admin/x.html"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_query_is_untouched() {
        assert_eq!(normalise_uri("/a/../b?x=/../%61//"), "/b?x=/../%61//");
        assert_eq!(normalise_uri("//admin?"), "/admin?");
        assert_eq!(normalise_uri("/%61dmin"), "/admin");
        assert!(matches!(normalise_uri("/a/b?c=%61"), Cow::Borrowed(_)));
        assert!(matches!(normalise_uri("/a/b?c=/../"), Cow::Borrowed(_)));
    }

    fn path_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just("//"),
                Just("\\"),
                Just("."),
                Just(".."),
                Just("%2e"),
                Just("%2E"),
                Just("%2f"),
                Just("%5C"),
                Just("%61"),
                Just("%"),
                Just("%3"),
                Just("%25"),
                Just("a"),
                Just("B"),
                Just("é"),
                Just("~"),
            ],
            0..24,
        )
        .prop_map(|parts| format!("/{}", parts.concat()))
    }

    proptest! {
        #[test]
        fn normalising_twice_is_normalising_once(raw in path_text()) {
            let once = normalise_path(&raw).into_owned();
            let twice = normalise_path(&once);
            prop_assert_eq!(&once, twice.as_ref());
            prop_assert!(matches!(twice, Cow::Borrowed(_)), "{:?} needs no more work", once);
            prop_assert!(once.starts_with('/'));
            for bad in ["//", "/./", "/../", "\\"] {
                prop_assert!(!once.contains(bad), "{:?} -> {:?}", raw, once);
            }
            prop_assert!(!once.ends_with("/.") && !once.ends_with("/.."), "{:?} -> {:?}", raw, once);
        }
    }
}
