//! Pure facts about a request: the host it names and the forwarding headers
//! it gets. No Pingora types, so every rule is unit-tested here.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::balance::hash::stable_hash;

/// The host a request names, lower-case, without port or trailing dot:
/// `WWW.Example.com:8080` → `www.example.com`, `[::1]:80` → `[::1]`.
/// Borrows when nothing needs changing (the common case on the hot path).
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let without_port = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rfind(':') {
            Some(colon) if raw[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &raw[..colon],
            _ => raw,
        }
    };
    let host = without_port.strip_suffix('.').unwrap_or(without_port);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Where a request is addressed (RFC 9112 3.2 and 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority<'a> {
    /// The authority of an absolute-form target (`GET http://host/x`): it
    /// wins over `Host`, and is what the upstream is told.
    Target(&'a str),
    /// The `Host` header (possibly empty).
    Host(&'a str),
    /// None at all: an HTTP/1.0 request without `Host`; the catch-all serves it.
    None,
}

impl<'a> Authority<'a> {
    /// The host text to route by (`""` for none).
    pub fn host(self) -> &'a str {
        match self {
            Authority::Target(a) | Authority::Host(a) => a,
            Authority::None => "",
        }
    }
}

/// Why a request is answered `400` before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// HTTP/1.1 with neither `Host` nor an absolute-form target.
    MissingHost,
    /// More than one `Host` header.
    DuplicateHost,
    /// A `Host` that is not text.
    InvalidHost,
    /// A request target that is none of origin-form (`/x`), absolute-form
    /// (`http://host/x`) or asterisk-form (`*`).
    InvalidTarget,
    /// `Transfer-Encoding` that is not one well-formed list: two header
    /// lines, an empty element, `chunked` twice or not last.
    InvalidTransferEncoding,
    /// A well-formed `Transfer-Encoding` with a coding other than `chunked`
    /// (`gzip, chunked`, `identity, chunked`): Tether decodes none, so it
    /// answers `501` as RFC 9112 6.1 and NGINX do.
    UnsupportedTransferEncoding,
}

impl BadRequest {
    /// The `reason` of the access log.
    pub fn reason(self) -> &'static str {
        match self {
            BadRequest::MissingHost => "missing_host",
            BadRequest::DuplicateHost => "duplicate_host",
            BadRequest::InvalidHost => "invalid_host",
            BadRequest::InvalidTarget => "invalid_target",
            BadRequest::InvalidTransferEncoding => "invalid_transfer_encoding",
            BadRequest::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
        }
    }

    /// The status it is answered with.
    pub fn status(self) -> u16 {
        match self {
            BadRequest::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }

    /// The short body of the `400`.
    pub fn message(self) -> &'static str {
        match self {
            BadRequest::MissingHost => "bad request: HTTP/1.1 needs a Host header",
            BadRequest::DuplicateHost => "bad request: more than one Host header",
            BadRequest::InvalidHost => "bad request: the Host header is not valid",
            BadRequest::InvalidTarget => "bad request: the request target is not valid",
            BadRequest::InvalidTransferEncoding => {
                "bad request: Transfer-Encoding must be chunked, once"
            }
            BadRequest::UnsupportedTransferEncoding => {
                "not implemented: only the chunked transfer coding is supported"
            }
        }
    }
}

/// The authority of an HTTP/1 request from its raw target (as received) and
/// its `Host` headers. `http11`: HTTP/1.1 (which must name one).
pub fn http1_authority<'a>(
    raw_target: &'a [u8],
    http11: bool,
    mut hosts: impl Iterator<Item = &'a [u8]>,
) -> Result<Authority<'a>, BadRequest> {
    let host = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(BadRequest::DuplicateHost),
        (Some(h), None) => Some(
            std::str::from_utf8(h)
                .ok()
                .filter(|h| h.is_empty() || valid_authority(h))
                .ok_or(BadRequest::InvalidHost)?,
        ),
        (None, None) => None,
    };
    if let Some(authority) = absolute_form(raw_target)? {
        return Ok(Authority::Target(authority));
    }
    match host {
        Some(h) => Ok(Authority::Host(h)),
        None if http11 => Err(BadRequest::MissingHost),
        None => Ok(Authority::None),
    }
}

/// `Some(authority)` for an absolute-form target, `None` for origin-form or
/// asterisk-form, an error for anything else.
fn absolute_form(target: &[u8]) -> Result<Option<&str>, BadRequest> {
    match target.first() {
        Some(b'/') => return Ok(None),
        Some(b'*') if target.len() == 1 => return Ok(None),
        _ => {}
    }
    let text = std::str::from_utf8(target).map_err(|_| BadRequest::InvalidTarget)?;
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            text.get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| &text[scheme.len()..])
        })
        .ok_or(BadRequest::InvalidTarget)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if !valid_authority(authority) {
        return Err(BadRequest::InvalidTarget);
    }
    Ok(Some(authority))
}

/// Whether `authority` is `host[:port]` as a `Host` header or an absolute
/// target may name it (RFC 9110 7.2, RFC 3986 3.2.2): a name of letters,
/// digits, `-`, `_` and `~` in dot-separated labels, none empty but a
/// single trailing dot; an IPv4 address (a name of digits and dots); or an
/// IPv6 address in brackets; then an optional `:` and at most five digits.
/// NGINX and HAProxy refuse the rest (`a.test:abc`, `a.test..`, `[::1`,
/// `<script>`) with `400`; so does Tether, instead of routing them to `*`.
pub fn valid_authority(authority: &str) -> bool {
    split_authority(authority).is_some()
}

/// An authority [`valid_authority`] accepts, split into its host (an IPv6
/// address with its brackets) and its port's digits (`Some("")` for a
/// bare `:`); `None` for one it refuses.
pub fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (addr, rest) = v6.split_once(']')?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            let host = &authority[..addr.len() + 2];
            match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if rest.is_empty() => (host, None),
                None => return None,
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if host.starts_with('[') {
        return Some((host, port));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let named = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
        });
    named.then_some((host, port))
}

/// Whether a request's `Transfer-Encoding` header lines (as received) frame
/// a body Tether can forward: none, or exactly one `chunked`. Pingora
/// accepts `chunked, chunked`, `,chunked` and `identity, chunked`, and
/// forwards `gzip, chunked` as plain `chunked` with the coding dropped;
/// HAProxy and NGINX refuse all of them. (With a `Content-Length` too,
/// Pingora has already removed the length and closes the connection after
/// the response, as RFC 9112 6.3 asks.)
pub fn transfer_encoding<'a>(mut lines: impl Iterator<Item = &'a [u8]>) -> Result<(), BadRequest> {
    let value = match (lines.next(), lines.next()) {
        (None, _) => return Ok(()),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(BadRequest::InvalidTransferEncoding),
    };
    if value.eq_ignore_ascii_case(b"chunked") {
        return Ok(());
    }
    let codings: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(|c| c.trim_ascii())
        .collect();
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    let malformed = codings.iter().any(|c| c.is_empty())
        || codings.iter().filter(|c| chunked(c)).count() != 1
        || !codings.last().is_some_and(chunked);
    if malformed {
        return Err(BadRequest::InvalidTransferEncoding);
    }
    Err(BadRequest::UnsupportedTransferEncoding)
}

/// `X-Forwarded-For` sent upstream: the client's address appended to what
/// the client sent, as NGINX's `$proxy_add_x_forwarded_for` does.
pub fn forwarded_for(existing: Option<&str>, client: Option<IpAddr>) -> Option<String> {
    let prev = existing.map(str::trim).filter(|s| !s.is_empty());
    if prev.is_none() && client.is_none() {
        return None;
    }
    // Room for the prefix, ", " and the longest IPv6 text (39 bytes).
    let mut value = String::with_capacity(prev.map_or(0, str::len) + 2 + 39);
    if let Some(prev) = prev {
        value.push_str(prev);
    }
    if let Some(ip) = client {
        if prev.is_some() {
            value.push_str(", ");
        }
        crate::text::push_ip(ip, &mut value);
    }
    Some(value)
}

/// The stable hash of a client address used by `hash` steering (and, later,
/// by `ip_cookie` and `source_ip`): the same address gives the same value in
/// every process and build. IPv4-mapped IPv6 addresses hash as their IPv4 form.
pub fn client_key(ip: Option<IpAddr>) -> u64 {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => stable_hash(&v4.octets()),
        Some(IpAddr::V6(v6)) => stable_hash(&v6.octets()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(
        target: &str,
        http11: bool,
        hosts: &[&str],
    ) -> Result<Authority<'static>, BadRequest> {
        let target: &'static str = Box::leak(target.to_string().into_boxed_str());
        let hosts: Vec<&'static [u8]> = hosts
            .iter()
            .map(|h| &*Box::leak(h.as_bytes().to_vec().into_boxed_slice()))
            .collect();
        http1_authority(target.as_bytes(), http11, hosts.into_iter())
    }

    #[test]
    fn the_authority_comes_from_an_absolute_target_then_host() {
        assert_eq!(
            authority("/x", true, &["a.test"]),
            Ok(Authority::Host("a.test"))
        );
        assert_eq!(
            authority("http://other.test/x", true, &[]),
            Ok(Authority::Target("other.test"))
        );
        assert_eq!(
            authority("HTTPS://Other.test:8443?q", true, &["a.test"]),
            Ok(Authority::Target("Other.test:8443")),
            "the target wins over Host"
        );
        assert_eq!(
            authority("*", true, &["a.test"]),
            Ok(Authority::Host("a.test"))
        );
        assert_eq!(authority("/x", false, &[]), Ok(Authority::None));
        assert_eq!(authority("/x", true, &[""]), Ok(Authority::Host("")));
    }

    #[test]
    fn requests_without_a_usable_authority_are_refused() {
        assert_eq!(authority("/x", true, &[]), Err(BadRequest::MissingHost));
        assert_eq!(
            authority("/x", true, &["a", "b"]),
            Err(BadRequest::DuplicateHost)
        );
        assert_eq!(
            authority("/x", true, &["a b"]),
            Err(BadRequest::InvalidHost)
        );
        for bad in [
            " /x",
            "x/y",
            "",
            "ftp://a/x",
            "http:///x",
            "http://u@a/x",
            "**",
        ] {
            assert_eq!(
                authority(bad, true, &["a"]),
                Err(BadRequest::InvalidTarget),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hosts_that_are_no_authority_are_refused() {
        for good in [
            "a.test",
            "A.Test:8080",
            "a.test.",
            "a-b_c.test:",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "localhost",
        ] {
            assert_eq!(
                authority("/x", true, &[good]),
                Ok(Authority::Host(good)),
                "{good:?}"
            );
        }
        for bad in [
            "other.test:abc",
            "other.test..",
            ".other.test",
            "[::1",
            "[::1]x",
            "[nope]",
            "<script>",
            "a b",
            "a/b",
            "u@a",
            "a.test:123456",
            "a.test:80:80",
            ":80",
            "caf\u{e9}.test",
        ] {
            assert_eq!(
                authority("/x", true, &[bad]),
                Err(BadRequest::InvalidHost),
                "{bad:?}"
            );
        }
        assert_eq!(
            authority("http://other.test:abc/x", true, &["a"]),
            Err(BadRequest::InvalidTarget)
        );
        // The split the admin listener reads its Host and Origin with.
        assert_eq!(split_authority("[::1]:80"), Some(("[::1]", Some("80"))));
        assert_eq!(split_authority("A.test"), Some(("A.test", None)));
        assert_eq!(split_authority("a.test:"), Some(("a.test", Some(""))));
        assert_eq!(split_authority("a..test"), None);
    }

    fn te(lines: &[&str]) -> Result<(), BadRequest> {
        transfer_encoding(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn transfer_encoding_is_one_chunked_or_refused() {
        assert_eq!(te(&[]), Ok(()));
        assert_eq!(te(&["chunked"]), Ok(()));
        assert_eq!(te(&["Chunked"]), Ok(()));
        for malformed in [
            &["chunked", "chunked"][..],
            &["chunked, chunked"],
            &[",chunked"],
            &["chunked,"],
            &["chunked, gzip"],
            &["gzip"],
            &[""],
        ] {
            assert_eq!(
                te(malformed),
                Err(BadRequest::InvalidTransferEncoding),
                "{malformed:?}"
            );
        }
        for unsupported in ["gzip, chunked", "identity, chunked", "x-custom ,chunked"] {
            let got = te(&[unsupported]);
            assert_eq!(
                got,
                Err(BadRequest::UnsupportedTransferEncoding),
                "{unsupported:?}"
            );
            assert_eq!(got.unwrap_err().status(), 501);
        }
    }

    #[test]
    fn host_is_lowercased_and_port_stripped() {
        assert_eq!(normalize_host("WWW.Example.COM:8080"), "www.example.com");
        assert_eq!(normalize_host("www.example.com"), "www.example.com");
        assert!(matches!(
            normalize_host("www.example.com"),
            Cow::Borrowed(_)
        ));
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(normalize_host(""), "");
        assert_eq!(normalize_host("host:notaport"), "host:notaport");
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(forwarded_for(None, Some(ip)).as_deref(), Some("10.1.2.3"));
        assert_eq!(
            forwarded_for(Some("1.1.1.1"), Some(ip)).as_deref(),
            Some("1.1.1.1, 10.1.2.3")
        );
        assert_eq!(
            forwarded_for(Some("  "), Some(ip)).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(forwarded_for(None, None), None);
    }

    #[test]
    fn client_key_is_stable_and_maps_v4_in_v6() {
        let v4: IpAddr = "127.0.0.5".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.5".parse().unwrap();
        assert_eq!(client_key(Some(v4)), client_key(Some(mapped)));
        assert_ne!(
            client_key(Some(v4)),
            client_key(Some("127.0.0.6".parse().unwrap()))
        );
    }
}
