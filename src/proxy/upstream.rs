//! What the connections on either side are told: the client's keep-alive
//! and pipelining, the HTTP version spoken to the endpoint, and the request
//! headers the endpoint gets (one `Content-Length`, never Tether's own
//! `__cflb`).

use pingora::prelude::*;
use pingora::proxy::Session;

use crate::affinity::cookie_header::cookies_without_cflb;
use crate::config::OriginProtocol;

/// Streams one HTTP/2 connection to an endpoint carries at once before
/// Pingora opens another (its default, 1, is a connection per concurrent
/// request; an endpoint's own `SETTINGS_MAX_CONCURRENT_STREAMS` still caps
/// it). 100 is the smallest limit RFC 9113 recommends servers allow.
pub const MAX_H2_STREAMS: usize = 100;

/// The HTTP versions (`max`, `min`) asked of a pool's endpoint: HTTP/1.1 for
/// `http1`; HTTP/2 only for `h2` (ALPN `h2` over TLS) and `h2c` (a plaintext
/// peer whose minimum is 2 is prior knowledge in Pingora). A WebSocket
/// handshake is HTTP/1.1 whatever the pool speaks: HTTP/2 has no `Upgrade`.
pub fn http_versions(protocol: OriginProtocol, websocket: bool) -> (u8, u8) {
    match protocol {
        OriginProtocol::H2 | OriginProtocol::H2c if !websocket => (2, 2),
        _ => (1, 1),
    }
}

/// A pool key bit per protocol, mixed into the peer's `group_key`: Pingora's
/// connection-pool key holds neither the ALPN nor the HTTP version, so
/// without it two pools speaking different protocols to one address could
/// find each other's idle connections.
fn protocol_group(versions: (u8, u8)) -> u64 {
    match versions {
        (2, _) => 1 << 62,
        _ => 0,
    }
}

/// Sets `peer` up to speak the pool's `protocol` (the request a `websocket`
/// handshake or not).
pub(super) fn speak(peer: &mut HttpPeer, protocol: OriginProtocol, websocket: bool) {
    let versions = http_versions(protocol, websocket);
    if versions == (1, 1) {
        return;
    }
    peer.options.set_http_version(versions.0, versions.1);
    peer.options.max_h2_streams = MAX_H2_STREAMS;
    peer.group_key ^= protocol_group(versions);
}

/// Kept-alive client connections: pipelined requests are answered in order,
/// and Pingora itself does not time the wait between requests (keep-alive
/// "infinite"): the front door's `idle_timeout` and `header_timeout` decide.
/// A timed keep-alive would make Pingora arm a timer for every request's
/// header read, and a client's own `Keep-Alive: timeout=` would cut the
/// operator's `idle_timeout` short.
pub(super) fn keep_alive(session: &mut Session) {
    let downstream = session.as_downstream_mut();
    downstream.set_pipelining_enabled(true);
    if downstream.get_keepalive().is_some() {
        downstream.set_keepalive(Some(0));
    }
}

/// Whether the client's `TE` lists `trailers`. Pingora strips `TE` (a
/// hop-by-hop header) from an HTTP/1 request it sends on as HTTP/2, but
/// `TE: trailers` is the one value HTTP/2 allows, and gRPC servers refuse a
/// call without it: the proxy puts it back ([`te_for_http2`]).
pub(super) fn asks_for_trailers(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::TE).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|token| {
            let name = token.split(|&b| b == b';').next().unwrap_or_default();
            name.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// `TE: trailers` on a request sent upstream as HTTP/2 when the client
/// asked for trailers and the request lost it on the way (an HTTP/1
/// client's; an HTTP/2 client's keeps its own).
pub(super) fn te_for_http2(client: &http::HeaderMap, upstream: &mut RequestHeader) -> Result<()> {
    if upstream.version == http::Version::HTTP_2
        && !upstream.headers.contains_key(http::header::TE)
        && asks_for_trailers(client)
    {
        upstream.insert_header(http::header::TE, "trailers")?;
    }
    Ok(())
}

/// A list-form or repeated `Content-Length` (`5, 5`), which Pingora has
/// already checked agrees, goes upstream as one value.
pub(super) fn one_content_length(req: &mut RequestHeader) -> Result<()> {
    let mut values = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (Some(first), second) = (values.next(), values.next()) else {
        return Ok(());
    };
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let Some(one) = first
        .to_str()
        .ok()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
    else {
        return Ok(());
    };
    req.insert_header(http::header::CONTENT_LENGTH, one)?;
    Ok(())
}

/// SPEC 3.4: Tether's own `__cflb` never reaches the endpoint; every other
/// cookie passes untouched ([`cookies_without_cflb`] decides). Done through
/// Pingora's header API so its header-case bookkeeping stays right; nothing
/// is done without a `__cflb`, and the usual single `Cookie` header is
/// replaced in place.
pub(super) fn strip_own_cookie(req: &mut RequestHeader) -> Result<()> {
    let Some(kept) = cookies_without_cflb(&req.headers) else {
        return Ok(());
    };
    match kept.as_slice() {
        [] => {
            req.remove_header(&http::header::COOKIE);
        }
        [only] => {
            req.insert_header(http::header::COOKIE, only.clone())?;
        }
        _ => {
            req.remove_header(&http::header::COOKIE);
            for value in kept {
                req.append_header(http::header::COOKIE, value)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookies: &[&[u8]]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "a.test").unwrap();
        for c in cookies {
            req.append_header(
                http::header::COOKIE,
                http::HeaderValue::from_bytes(c).unwrap(),
            )
            .unwrap();
        }
        req
    }

    fn cookies(req: &RequestHeader) -> Vec<&[u8]> {
        req.headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    #[test]
    fn te_trailers_goes_to_http2_endpoints_only_when_asked() {
        let mut client = http::HeaderMap::new();
        let h2 = || {
            let mut req = RequestHeader::build("POST", b"/s/M", None).unwrap();
            req.set_version(http::Version::HTTP_2);
            req
        };
        let mut req = h2();
        te_for_http2(&client, &mut req).unwrap();
        assert!(req.headers.get("te").is_none());
        for asked in ["trailers", "gzip, Trailers", "deflate;q=0.5, trailers;q=1"] {
            client.insert("te", http::HeaderValue::from_static(asked));
            assert!(asks_for_trailers(&client), "{asked}");
            let mut req = h2();
            te_for_http2(&client, &mut req).unwrap();
            assert_eq!(req.headers["te"], "trailers", "{asked}");
            let mut h1 = RequestHeader::build("POST", b"/s/M", None).unwrap();
            te_for_http2(&client, &mut h1).unwrap();
            assert!(h1.headers.get("te").is_none());
        }
        client.insert("te", http::HeaderValue::from_static("gzip, trailersx"));
        assert!(!asks_for_trailers(&client));
    }

    #[test]
    fn each_protocol_asks_for_its_versions() {
        assert_eq!(http_versions(OriginProtocol::Http1, false), (1, 1));
        assert_eq!(http_versions(OriginProtocol::H2, false), (2, 2));
        assert_eq!(http_versions(OriginProtocol::H2c, false), (2, 2));
        for protocol in [
            OriginProtocol::Http1,
            OriginProtocol::H2,
            OriginProtocol::H2c,
        ] {
            assert_eq!(http_versions(protocol, true), (1, 1), "{protocol:?}");
        }
    }

    #[test]
    fn http2_peers_never_share_a_pool_key_with_http1_ones() {
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let h1 = HttpPeer::new(addr, false, String::new());
        let mut h2c = h1.clone();
        speak(&mut h2c, OriginProtocol::H2c, false);
        assert_eq!(h2c.options.alpn, pingora::protocols::ALPN::H2);
        assert_eq!(h2c.options.max_h2_streams, MAX_H2_STREAMS);
        use pingora::upstreams::peer::Peer;
        assert_ne!(h1.reuse_hash(), h2c.reuse_hash());
        let mut websocket = h1.clone();
        speak(&mut websocket, OriginProtocol::H2c, true);
        assert_eq!(websocket.reuse_hash(), h1.reuse_hash());
    }

    #[test]
    fn the_endpoint_never_gets_a_cflb() {
        for (sent, upstream) in [
            (&[&b"a=1; __cflb=x; b=2"[..]][..], &[&b"a=1; b=2"[..]][..]),
            (&[b"__cflb=x"], &[]),
            (&[b"__cflb=x", b"a=1", b"b=2; __cflb=y"], &[b"a=1", b"b=2"]),
            (&[b"a=\xff; __cflb=hidden"], &[b"a=\xff"]),
            (&[b"a=1", b"b=2"], &[b"a=1", b"b=2"]),
            (&[], &[]),
        ] {
            let mut req = request(sent);
            strip_own_cookie(&mut req).unwrap();
            assert_eq!(cookies(&req), upstream, "sent {sent:?}");
            assert!(req.headers.get("host").is_some());
        }
    }
}
