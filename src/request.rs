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

/// `X-Forwarded-For` sent upstream: the client's address appended to what
/// the client sent, as NGINX's `$proxy_add_x_forwarded_for` does.
pub fn forwarded_for(existing: Option<&str>, client: Option<IpAddr>) -> Option<String> {
    match (existing.map(str::trim).filter(|s| !s.is_empty()), client) {
        (Some(prev), Some(ip)) => Some(format!("{prev}, {ip}")),
        (None, Some(ip)) => Some(ip.to_string()),
        (Some(prev), None) => Some(prev.to_string()),
        (None, None) => None,
    }
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
