//! Tether's own replies: the short plain-text answers it writes itself
//! (404, 503, 400), the HTTPS redirect, and the status and body of a request
//! that failed in flight (SPEC 3.5).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::ErrorSource;

use super::RequestCtx;
use crate::route::request::BadRequest;

/// The header of a plain-text reply Tether writes itself, for `body`.
pub(super) fn text_header(status: u16, body: &Bytes) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Content-Length", body.len().to_string())?;
    Ok(resp)
}

/// A short plain-text reply written by Tether itself (404, 503).
pub(super) async fn respond_text(session: &mut Session, status: u16, text: &str) -> Result<()> {
    let body = Bytes::from(format!("{text}\n"));
    let mut resp = text_header(status, &body)?;
    resp.insert_header("Cache-Control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// `always_use_https`: where a plain-HTTP request is sent (Cloudflare answers 301).
pub(super) fn https_location(host: &str, port: Option<u16>, req: &RequestHeader) -> String {
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    match port {
        None | Some(443) => format!("https://{host}{path}"),
        Some(port) => format!("https://{host}:{port}{path}"),
    }
}

pub(super) async fn redirect(session: &mut Session, location: &str) -> Result<()> {
    let body = Bytes::from(format!("moved to {location}\n"));
    let mut resp = text_header(301, &body)?;
    resp.insert_header(http::header::LOCATION, location)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// SPEC 3.5: the status and short body for a request that failed in flight.
pub(super) fn failure_status(e: &Error) -> (u16, &'static str) {
    if is_invalid_chunk(e) {
        return (400, "bad request: a malformed chunked body");
    }
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(code)) => (*code, "request failed"),
        (ErrorSource::Upstream, ErrorType::ConnectTimedout)
        | (ErrorSource::Upstream, ErrorType::ReadTimedout)
        | (ErrorSource::Upstream, ErrorType::WriteTimedout) => (504, "upstream timed out"),
        (ErrorSource::Upstream, _) => (502, "upstream unreachable"),
        (
            ErrorSource::Downstream,
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
        ) => (0, ""),
        // The request body's wait (`client_limits.body_timeout`, Pingora's
        // read timeout) or pace (`min_body_rate`).
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => (408, "request body timed out"),
        (ErrorSource::Downstream, _) => (400, "bad request"),
        _ => (500, "internal error"),
    }
}

/// Whether the client's connection failed because the front door found its
/// chunked body malformed ([`crate::front_door::guard::InvalidChunk`]).
pub(super) fn is_invalid_chunk(e: &Error) -> bool {
    let mut cause = e
        .cause
        .as_deref()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io
                .get_ref()
                .is_some_and(|inner| inner.is::<crate::front_door::guard::InvalidChunk>());
        }
        let pingora = c
            .downcast_ref::<Error>()
            .or_else(|| c.downcast_ref::<Box<Error>>().map(|b| &**b));
        cause = match pingora {
            Some(inner) => inner
                .cause
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    false
}

/// `400` for a request that names no usable authority; the connection is
/// not reused.
pub(super) async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    bad: BadRequest,
) -> Result<bool> {
    ctx.refused = Some(bad.reason());
    session.set_keepalive(None);
    respond_text(session, bad.status(), bad.message()).await?;
    Ok(true)
}

/// Whether a request's failure is the client's doing — its connection (a
/// close, a reset, a timeout of its own) or its request (a malformed body):
/// the access log records it with its status; it is no operator's error, so
/// Pingora's ERROR line for it is logged at DEBUG instead.
pub(super) fn client_caused(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_failures_are_the_clients() {
        let bad_chunk = Error::explain(ErrorType::new("InvalidChunk"), "x").into_down();
        assert!(client_caused(&bad_chunk));
        assert_eq!(failure_status(&bad_chunk).0, 400);
        for etype in [
            ErrorType::ConnectionClosed,
            ErrorType::ReadTimedout,
            ErrorType::InvalidHTTPHeader,
        ] {
            assert!(client_caused(&Error::explain(etype, "x").into_down()));
        }
        // The endpoint's failures and Tether's own are the operator's.
        assert!(!client_caused(
            &Error::explain(ErrorType::ConnectRefused, "x").into_up()
        ));
        assert!(!client_caused(
            &Error::explain(ErrorType::ReadTimedout, "x").into_up()
        ));
        assert!(!client_caused(&Error::explain(
            ErrorType::HTTPStatus(503),
            "x"
        )));
    }
}
