//! Whether a request that failed upstream after its connection was had is
//! sent again, and whether the end of an upgraded connection (a WebSocket)
//! is a normal end or a failure. Pure: plain facts of the attempt in, a
//! verdict out (docs/operations.md, "Retries").
//!
//! A pooled (kept-alive) connection can be closed by the endpoint while it
//! idles; the request sent on it then meets an EOF or a reset before any
//! byte of the response. It is sent again, once, on a fresh connection to
//! the same endpoint when that is safe, as NGINX does for its cached
//! keepalive connections: when the request could not even be written (the
//! endpoint never saw it), whatever its method; when it was written and no
//! answer came, only for an idempotent method (RFC 9110 9.2.2: `GET`,
//! `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`) — an endpoint that received a
//! `POST`, ran it and died before answering looks the same as a stale
//! connection, and a `POST` is never run twice. Never when a byte of the
//! body was forwarded, the response had begun, the connection was fresh, or
//! the attempt timed out.

use pingora::prelude::*;
use pingora::ErrorSource;

/// What is known of an attempt that failed after its upstream connection
/// was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempt {
    /// The connection came from the pool (it had carried a request before).
    pub reused: bool,
    /// The response's header had arrived (or any byte of it).
    pub response_started: bool,
    /// At least one byte of the request body was read from the client to be
    /// forwarded.
    pub body_forwarded: bool,
    /// The request was already sent again once for a stale connection.
    pub already_retried: bool,
    /// Its method is idempotent (RFC 9110 9.2.2).
    pub idempotent: bool,
}

/// How an upstream attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Writing the request failed (`EPIPE`, a reset): the endpoint's
    /// connection was gone before it had the request.
    Unsent,
    /// The endpoint's connection closed or reset (EOF, `ECONNRESET`) after
    /// the request was written, before any byte of the response: what a
    /// stale pooled connection does, and also an endpoint that died while
    /// handling the request.
    Closed,
    /// Anything else: a timeout, a malformed response, a failure after the
    /// response began, the client's failure or Tether's own.
    Other,
}

/// Classifies an error from an upstream attempt (before Pingora's or
/// Tether's context is added to it).
pub fn failure_of(e: &Error) -> Failure {
    if e.esource() != &ErrorSource::Upstream {
        return Failure::Other;
    }
    match e.etype() {
        ErrorType::WriteError => Failure::Unsent,
        ErrorType::ConnectionClosed | ErrorType::ReadError
            if response_bytes_read(e.context.as_ref().map(|c| c.as_str())).unwrap_or(0) == 0 =>
        {
            Failure::Closed
        }
        _ => Failure::Other,
    }
}

/// The response bytes Pingora had read when a response header read failed
/// (its context says `bytes already read: N`); `None` when it does not say.
pub fn response_bytes_read(context: Option<&str>) -> Option<u64> {
    let (_, rest) = context?.split_once("bytes already read: ")?;
    let digits: &str = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse().ok()
}

/// Whether the request is sent again on a fresh connection to the same
/// endpoint (`tether_upstream_retries_total{reason="stale_connection"}`).
pub fn send_again(attempt: Attempt, failure: Failure) -> bool {
    let safe = match failure {
        Failure::Unsent => true,
        Failure::Closed => attempt.idempotent,
        Failure::Other => false,
    };
    safe && attempt.reused
        && !attempt.response_started
        && !attempt.body_forwarded
        && !attempt.already_retried
}

/// Whether `method` is idempotent (RFC 9110 9.2.2).
pub fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// How an upgraded connection (a `101 Switching Protocols` exchange, e.g. a
/// WebSocket) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradedEnd {
    /// Either side closed or reset its connection: the usual end of a
    /// WebSocket (the endpoint often resets after the client closed). Not an
    /// error: no ERROR line, no error in the access log.
    Normal,
    /// A timeout or anything else: logged as a failure.
    Failed,
}

/// How the connection of an upgraded request that ended with `e` ended
/// (`upgraded`: the endpoint answered `101`).
pub fn upgraded_end(upgraded: bool, e: &Error) -> Option<UpgradedEnd> {
    if !upgraded {
        return None;
    }
    Some(match e.etype() {
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            UpgradedEnd::Normal
        }
        _ => UpgradedEnd::Failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale() -> Attempt {
        Attempt {
            reused: true,
            idempotent: true,
            ..Attempt::default()
        }
    }

    fn up(etype: ErrorType, context: &'static str) -> Box<Error> {
        Error::explain(etype, context).into_up()
    }

    #[test]
    fn a_closed_reused_connection_before_the_response_is_sent_again() {
        assert!(send_again(stale(), Failure::Closed));
        assert!(send_again(stale(), Failure::Unsent));
    }

    #[test]
    fn a_non_idempotent_request_is_sent_again_only_if_it_was_never_written() {
        let post = Attempt {
            idempotent: false,
            ..stale()
        };
        assert!(send_again(post, Failure::Unsent));
        assert!(
            !send_again(post, Failure::Closed),
            "the endpoint may have run it"
        );
        assert!(idempotent(&http::Method::GET) && idempotent(&http::Method::DELETE));
        assert!(!idempotent(&http::Method::POST) && !idempotent(&http::Method::PATCH));
    }

    #[test]
    fn nothing_else_is_sent_again() {
        let no = [
            // A fresh connection: the endpoint really failed.
            Attempt::default(),
            Attempt {
                response_started: true,
                ..stale()
            },
            Attempt {
                body_forwarded: true,
                ..stale()
            },
            Attempt {
                already_retried: true,
                ..stale()
            },
        ];
        for attempt in no {
            assert!(!send_again(attempt, Failure::Closed), "{attempt:?}");
            assert!(!send_again(attempt, Failure::Unsent), "{attempt:?}");
        }
        assert!(!send_again(stale(), Failure::Other));
    }

    #[test]
    fn closes_and_resets_before_the_response_are_stale_and_broken_pipes_unsent() {
        let closed = up(
            ErrorType::ConnectionClosed,
            "while reading response headers, bytes already read: 0",
        );
        assert_eq!(failure_of(&closed), Failure::Closed);
        let reset = up(
            ErrorType::ReadError,
            "while reading response headers, bytes already read: 0",
        );
        assert_eq!(failure_of(&reset), Failure::Closed);
        let pipe = up(ErrorType::WriteError, "while writing request headers");
        assert_eq!(failure_of(&pipe), Failure::Unsent);
    }

    #[test]
    fn timeouts_partial_responses_and_the_clients_failures_are_not() {
        let partial = up(
            ErrorType::ConnectionClosed,
            "while reading response headers, bytes already read: 17",
        );
        assert_eq!(failure_of(&partial), Failure::Other);
        let timeout = up(ErrorType::ReadTimedout, "while reading response headers");
        assert_eq!(failure_of(&timeout), Failure::Other);
        let refused = up(ErrorType::ConnectRefused, "x");
        assert_eq!(failure_of(&refused), Failure::Other);
        let client = Error::explain(ErrorType::ConnectionClosed, "x").into_down();
        assert_eq!(failure_of(&client), Failure::Other);
        let invalid = up(ErrorType::InvalidHTTPHeader, "x");
        assert_eq!(failure_of(&invalid), Failure::Other);
    }

    #[test]
    fn the_bytes_read_are_read_from_the_context() {
        let read = |c| response_bytes_read(Some(c));
        assert_eq!(
            read("while reading response headers, bytes already read: 0"),
            Some(0)
        );
        assert_eq!(read("bytes already read: 42, more"), Some(42));
        assert_eq!(read("while writing request headers"), None);
        assert_eq!(response_bytes_read(None), None);
    }

    #[test]
    fn closes_and_resets_end_an_upgraded_connection_normally() {
        for etype in [
            ErrorType::ConnectionClosed,
            ErrorType::ReadError,
            ErrorType::WriteError,
        ] {
            for e in [
                Error::explain(etype.clone(), "x").into_up(),
                Error::explain(etype, "x").into_down(),
            ] {
                assert_eq!(upgraded_end(true, &e), Some(UpgradedEnd::Normal), "{e}");
                assert_eq!(upgraded_end(false, &e), None);
            }
        }
        let timeout = Error::explain(ErrorType::ReadTimedout, "x").into_up();
        assert_eq!(upgraded_end(true, &timeout), Some(UpgradedEnd::Failed));
    }
}
