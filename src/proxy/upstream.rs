//! What the connections on either side are told: the client's keep-alive
//! and pipelining, and the request headers the endpoint gets (one
//! `Content-Length`, never Tether's own `__cflb`).

use pingora::prelude::*;
use pingora::proxy::Session;

use crate::affinity::cookie_header::cookies_without_cflb;

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
