//! Who may drive the admin listener, decided from a request's header alone
//! (before its body is read, before the token): a pure function of the
//! client's address, `Host`, `Origin` and `Sec-Fetch-Site`
//! (docs/admin-api.md, "What is refused").
//!
//! - **Without a token** (`tether.admin.token_file` unset) the listener is
//!   guarded by being local only: a client that is not on a loopback address
//!   is refused, and so is a request whose `Host` is not the listener's own
//!   address as configured or a loopback name (`localhost`, `127.0.0.1`,
//!   `[::1]`, any port). That is the defence against DNS rebinding: a page on
//!   `evil.example` whose name is made to resolve to `127.0.0.1` reaches the
//!   listener from the operator's browser, but with `Host: evil.example`.
//! - **With a token** neither is restricted: the token is the guard (a page
//!   cannot send an `Authorization` header it does not know; the status page
//!   keeps the token in `sessionStorage`, never in a cookie), and the listener
//!   may then serve other machines under any name.
//! - **Always**, a request that changes something (any method but `GET`,
//!   `HEAD` and `OPTIONS`) sent by a browser on behalf of another site is
//!   refused (CSRF): `Sec-Fetch-Site: cross-site` or `same-site`, or an
//!   `Origin` whose host and port are not the request's `Host` (`Origin:
//!   null` included). Clients that are not browsers send neither field and
//!   are unaffected; the status page's own `fetch()` calls are same-origin.
//!
//! Every refusal is `403` with one message saying what was refused and why.

use std::net::IpAddr;

use super::response::ApiError;
use crate::route::request::split_authority;

/// The loopback names a tokenless listener answers to, with any port.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What the admission reads of a request: its header and its client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head<'a> {
    pub method: &'a str,
    /// The `Host` field, raw.
    pub host: Option<&'a [u8]>,
    /// The `Origin` field, raw.
    pub origin: Option<&'a [u8]>,
    /// The `Sec-Fetch-Site` field, raw.
    pub sec_fetch_site: Option<&'a [u8]>,
    /// The client's address; `None` when unknown (never loopback then).
    pub client_ip: Option<IpAddr>,
}

/// The admin listener's admission rules.
#[derive(Debug, Clone)]
pub struct Admission {
    /// `tether.admin.address` as configured, split into host and port.
    own: Option<(String, Option<u16>)>,
    /// Whether a token is configured (then `Host` and the client's address
    /// are not restricted).
    token: bool,
}

impl Admission {
    /// `address`: the listener's address as configured (`127.0.0.1:9180`).
    pub fn new(address: Option<&str>, token: bool) -> Self {
        Admission {
            own: address.and_then(authority),
            token,
        }
    }

    /// `Ok` when the request may go on (to the token check); else `403`.
    pub fn check(&self, head: &Head<'_>) -> Result<(), ApiError> {
        if !self.token {
            self.local_only(head)?;
        }
        same_origin_for_changes(head)
    }

    /// Without a token: loopback clients, and `Host` naming this listener.
    fn local_only(&self, head: &Head<'_>) -> Result<(), ApiError> {
        let loopback = head
            .client_ip
            .is_some_and(|ip| ip.to_canonical().is_loopback());
        if !loopback {
            let client = head
                .client_ip
                .map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
            return Err(ApiError::new(
                403,
                format!("the admin API has no token (tether.admin.token_file), so it answers loopback clients only; this request came from {client}"),
            ));
        }
        let host = head.host.and_then(|h| std::str::from_utf8(h).ok());
        let allowed = host
            .and_then(authority)
            .is_some_and(|(name, port)| self.names_this_listener(&name, port));
        if allowed {
            return Ok(());
        }
        let shown = match host {
            Some(h) => format!("Host {}", crate::config::read::quote(h)),
            None if head.host.is_some() => "a Host that is not text".to_string(),
            None => "no Host".to_string(),
        };
        let own = self.own.as_ref().map_or(String::new(), |(h, p)| match p {
            Some(p) => format!("{h}:{p}, "),
            None => format!("{h}, "),
        });
        Err(ApiError::new(
            403,
            format!("the admin API has no token (tether.admin.token_file), so it answers only requests for {own}localhost, 127.0.0.1 or [::1] (DNS rebinding); this one has {shown}"),
        ))
    }

    fn names_this_listener(&self, name: &str, port: Option<u16>) -> bool {
        LOOPBACK_NAMES.contains(&name)
            || self
                .own
                .as_ref()
                .is_some_and(|(own, own_port)| *own == name && *own_port == port)
    }
}

/// Whether `method` changes nothing (CSRF checks do not apply to it).
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// A change sent by a browser for another site is refused.
fn same_origin_for_changes(head: &Head<'_>) -> Result<(), ApiError> {
    if is_safe(head.method) {
        return Ok(());
    }
    let refuse = |why: String| {
        Err(ApiError::new(
            403,
            format!(
                "{} refused: {why} (cross-site request forgery)",
                head.method
            ),
        ))
    };
    if let Some(site) = head.sec_fetch_site {
        let site = String::from_utf8_lossy(site).trim().to_ascii_lowercase();
        if site == "cross-site" || site == "same-site" {
            return refuse(format!(
                "the browser sent it for another site (Sec-Fetch-Site: {site})"
            ));
        }
    }
    let Some(origin) = head.origin else {
        return Ok(());
    };
    let origin_text = String::from_utf8_lossy(origin);
    let Some(from) = origin_host_port(origin_text.trim()) else {
        return refuse(format!(
            "Origin {} is not this listener",
            crate::config::read::quote(&origin_text)
        ));
    };
    let to = head
        .host
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(authority)
        .map(|(name, port)| (name, port.unwrap_or(80)));
    if to.as_ref() == Some(&from) {
        return Ok(());
    }
    let host = head.host.map_or("none".to_string(), |h| {
        String::from_utf8_lossy(h).into_owned()
    });
    refuse(format!(
        "Origin {} is not this listener (Host {})",
        crate::config::read::quote(&origin_text),
        crate::config::read::quote(&host)
    ))
}

/// `scheme://host[:port]` → the host (lowercase) and the port, the scheme's
/// default when absent; `None` for `null`, a path, or anything else.
fn origin_host_port(origin: &str) -> Option<(String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (name, port) = authority(rest)?;
    Some((name, port.unwrap_or(default)))
}

/// `host[:port]` → the host, lowercase, and the port if any; `None` when it
/// names no host (the proxy's rule, [`split_authority`]) or has an empty or
/// out-of-range port.
fn authority(text: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = split_authority(text.trim())?;
    let port = match port {
        None => None,
        Some("") => return None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((name.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn head<'a>(method: &'a str, host: &'a str) -> Head<'a> {
        Head {
            method,
            host: Some(host.as_bytes()),
            client_ip: LOCAL,
            ..Head::default()
        }
    }

    fn status(admission: &Admission, head: Head<'_>) -> u16 {
        admission.check(&head).map_or_else(|e| e.status, |()| 200)
    }

    #[test]
    fn without_a_token_only_loopback_names_and_the_listeners_own_address_are_answered() {
        let a = Admission::new(Some("127.0.0.1:9180"), false);
        for host in [
            "127.0.0.1:9180",
            "localhost",
            "localhost:9180",
            "LOCALHOST:8000",
            "127.0.0.1",
            "[::1]",
            "[::1]:9180",
        ] {
            assert_eq!(status(&a, head("GET", host)), 200, "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9180",
            "127.0.0.1.evil.example",
            "localhost.evil.example:9180",
            "127.0.0.2:9180",
            "",
            "localhost:",
            "localhost:x",
            "[::1",
            "a b",
        ] {
            assert_eq!(status(&a, head("GET", host)), 403, "{host:?}");
        }
        let no_host = Head {
            host: None,
            ..head("GET", "")
        };
        assert_eq!(status(&a, no_host), 403);

        let wide = Admission::new(Some("10.0.0.5:9180"), false);
        assert_eq!(status(&wide, head("GET", "10.0.0.5:9180")), 200);
        assert_eq!(status(&wide, head("GET", "10.0.0.5:9181")), 403);
        assert_eq!(status(&wide, head("GET", "10.0.0.5")), 403);
    }

    #[test]
    fn without_a_token_only_loopback_clients_are_answered() {
        let a = Admission::new(Some("0.0.0.0:9180"), false);
        let from = |ip: &str| Head {
            client_ip: Some(ip.parse().unwrap()),
            ..head("GET", "localhost:9180")
        };
        assert_eq!(status(&a, from("127.0.0.1")), 200);
        assert_eq!(status(&a, from("127.3.4.5")), 200);
        assert_eq!(status(&a, from("::1")), 200);
        assert_eq!(status(&a, from("::ffff:127.0.0.1")), 200);
        assert_eq!(status(&a, from("10.0.0.7")), 403);
        assert_eq!(status(&a, from("::ffff:10.0.0.7")), 403);
        let unknown = Head {
            client_ip: None,
            ..head("GET", "localhost")
        };
        assert_eq!(status(&a, unknown), 403);
        let e = a.check(&from("10.0.0.7")).unwrap_err();
        assert!(e.messages[0].contains("loopback clients only"), "{e:?}");
        assert!(e.messages[0].contains("10.0.0.7"), "{e:?}");
    }

    #[test]
    fn with_a_token_host_and_client_are_not_restricted() {
        let a = Admission::new(Some("127.0.0.1:9180"), true);
        let remote = Head {
            client_ip: Some("10.0.0.7".parse().unwrap()),
            ..head("GET", "admin.internal.example")
        };
        assert_eq!(status(&a, remote), 200);
        assert_eq!(status(&a, head("PATCH", "anything")), 200);
    }

    #[test]
    fn changes_sent_for_another_site_are_refused_token_or_not() {
        for token in [false, true] {
            let a = Admission::new(Some("127.0.0.1:9180"), token);
            let with = |method, origin: Option<&'static str>, site: Option<&'static str>| Head {
                origin: origin.map(str::as_bytes),
                sec_fetch_site: site.map(str::as_bytes),
                ..head(method, "127.0.0.1:9180")
            };
            // Not a browser: neither field.
            assert_eq!(status(&a, with("PATCH", None, None)), 200);
            // The status page's own fetch().
            let page = with("PATCH", Some("http://127.0.0.1:9180"), Some("same-origin"));
            assert_eq!(status(&a, page), 200);
            assert_eq!(status(&a, with("PUT", None, Some("none"))), 200);
            // Host and port decide, not the scheme (a TLS proxy may front the listener).
            let tls = with("PATCH", Some("https://127.0.0.1:9180"), None);
            assert_eq!(status(&a, tls), 200);
            for method in ["PATCH", "PUT", "DELETE", "POST"] {
                for (origin, site) in [
                    (Some("http://evil.example"), None),
                    (Some("http://127.0.0.1:8080"), None),
                    (Some("http://localhost:9180"), None),
                    (Some("null"), None),
                    (Some("http://127.0.0.1:9180/path"), None),
                    (None, Some("cross-site")),
                    (None, Some("same-site")),
                    (Some("http://127.0.0.1:9180"), Some("cross-site")),
                ] {
                    assert_eq!(
                        status(&a, with(method, origin, site)),
                        403,
                        "{method} {origin:?} {site:?} token={token}"
                    );
                }
            }
            // Reads are not changes: a page may load the status page's links.
            for method in ["GET", "HEAD", "OPTIONS"] {
                let read = with(method, Some("http://evil.example"), Some("cross-site"));
                assert_eq!(status(&a, read), 200, "{method}");
            }
        }
        let a = Admission::new(Some("127.0.0.1:9180"), true);
        let e = a
            .check(&Head {
                origin: Some(b"http://evil.example"),
                ..head("PATCH", "127.0.0.1:9180")
            })
            .unwrap_err();
        assert_eq!(
            e.messages,
            ["PATCH refused: Origin \"http://evil.example\" is not this listener (Host \"127.0.0.1:9180\") (cross-site request forgery)"]
        );
    }

    #[test]
    fn origins_and_hosts_compare_by_host_and_port_with_scheme_defaults() {
        assert_eq!(
            origin_host_port("http://LocalHost"),
            Some(("localhost".into(), 80))
        );
        assert_eq!(
            origin_host_port("https://[::1]"),
            Some(("[::1]".into(), 443))
        );
        assert_eq!(
            origin_host_port("http://127.0.0.1:9180"),
            Some(("127.0.0.1".into(), 9180))
        );
        assert_eq!(origin_host_port("null"), None);
        assert_eq!(origin_host_port("ftp://x"), None);
        assert_eq!(origin_host_port("http://u@x"), None);
        let a = Admission::new(None, true);
        let page = |origin: &'static str, host: &'static str| Head {
            origin: Some(origin.as_bytes()),
            ..head("PATCH", host)
        };
        assert_eq!(status(&a, page("http://localhost", "localhost")), 200);
        assert_eq!(status(&a, page("http://localhost", "localhost:80")), 200);
        assert_eq!(status(&a, page("http://localhost:80", "LOCALHOST")), 200);
        assert_eq!(status(&a, page("http://localhost", "localhost:81")), 403);
        let no_host = Head {
            host: None,
            ..page("http://localhost", "")
        };
        assert_eq!(status(&a, no_host), 403);
    }

    #[test]
    fn authorities() {
        assert_eq!(
            authority("127.0.0.1:9180"),
            Some(("127.0.0.1".into(), Some(9180)))
        );
        assert_eq!(authority("[::1]:1"), Some(("[::1]".into(), Some(1))));
        assert_eq!(authority("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(authority("Example.COM"), Some(("example.com".into(), None)));
        assert_eq!(authority("::1"), None);
        assert_eq!(authority("x:65536"), None);
        assert_eq!(authority("[::1]x"), None);
        assert_eq!(authority(":80"), None);
    }
}
