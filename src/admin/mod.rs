//! The admin API (SPEC 5): a Pingora listening service on
//! `tether.admin.address`, built on Pingora's own HTTP app support
//! ([`HttpServer`] over [`ServeHttp`]) behind the same [`FrontDoor`] as the
//! proxy (`tether.client_limits`: header and idle timeouts, header size,
//! `max_connections`, counted apart from the proxy's). This file only moves
//! bytes: it asks the pure [`Router`] whether the request's header is
//! admitted (who may call, the token) before it reads the body (at most
//! [`MAX_BODY`]), hands everything to the [`Router`], and writes its answer.
//!
//! - [`router`]: the routing table; [`call`]: one authorised call, as every
//!   resource sees it; [`admission`]: DNS rebinding and CSRF;
//!   [`auth`]: the token; [`response`]: the envelope and errors;
//!   [`strict_json`]: bodies whose objects name each key once.
//! - One file per resource: [`load_balancers`], [`pools`] (and endpoints),
//!   [`session_persistence`], [`metrics`], [`cluster`] (this replica's link),
//!   [`status`] (the status page).

mod admission;
mod auth;
mod call;
mod cloudflare;
mod cluster;
pub mod exposition;
mod load_balancers;
mod metrics;
mod objects;
mod pools;
mod response;
mod router;
mod session_persistence;
mod status;
mod strict_json;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use crate::changes::Changes;
use crate::config::{self, ClientLimits};
use crate::front_door::{FrontDoor, Tally};
use response::{AdminResponse, MAX_BODY};
pub use router::{AdminRequest, Router};

/// How long the admin API waits for each read of a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a too-large body is read (and dropped) before answering `413`.
const DRAIN_LIMIT: usize = 1024 * 1024;

static ADMIN_OPEN: AtomicUsize = AtomicUsize::new(0);
static ADMIN_REFUSED: AtomicU64 = AtomicU64::new(0);
/// The admin listener's connections, counted apart from the proxy's: a
/// flood of proxy clients does not lock the operator out, nor the reverse.
static ADMIN_TALLY: Tally = Tally {
    name: "admin listener: client_limits.max_connections",
    open: &ADMIN_OPEN,
    refused: &ADMIN_REFUSED,
};

/// The admin application: the router, which holds the owner of changes.
pub struct AdminApp {
    router: Router,
}

/// The admin listening service for `admin`, behind a front door with
/// `limits` (`tether.client_limits`, reloaded with it). Reads the token file
/// once (its content trimmed); an unreadable or empty file is an error.
pub fn service(
    changes: Arc<Changes>,
    admin: &config::Admin,
    cluster: Option<Arc<crate::cluster::Status>>,
    limits: Arc<ArcSwap<ClientLimits>>,
) -> Result<Service<FrontDoor<HttpServer<AdminApp>>>, String> {
    let token = match &admin.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("tether.admin.token_file: {}: {e}", path.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(format!(
                    "tether.admin.token_file: {}: the token file is empty",
                    path.display()
                ));
            }
            Some(token)
        }
    };
    if token.is_none() && !is_loopback_address(&admin.address) {
        log::warn!(
            "tether.admin has no token_file and listens on {}: without a token only loopback clients are answered",
            admin.address
        );
    }
    let mut router = Router::new(token.as_deref(), changes).listening_on(&admin.address);
    if let Some(status) = cluster {
        router = router.with_cluster(status);
    }
    let app = AdminApp { router };
    let door = FrontDoor::counting_in(HttpServer::new_app(app), limits, &ADMIN_TALLY);
    let mut service = Service::new("tether admin".to_string(), door);
    service.add_tcp(&admin.address);
    Ok(service)
}

/// Whether `address` (`host:port`) is on a loopback address.
fn is_loopback_address(address: &str) -> bool {
    address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback())
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        // Tether's own answers: the front door must not log them as the parser's refusals.
        crate::front_door::reached_proxy(session);
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let client = session
            .client_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let now = self.router.changes().state().clock.now();
        // Who may call, and the token, from the header alone: a refused
        // request's body is never read.
        let (admitted, has_body) = {
            let header = session.req_header();
            let request = request(header, &client, client_ip, &[], now);
            let has_body = header.headers.contains_key(TRANSFER_ENCODING)
                || header
                    .headers
                    .get(CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() != b"0");
            (self.router.admit(&request), has_body)
        };
        if let Err(answer) = admitted {
            if has_body {
                // The body stays unread: the connection cannot be reused.
                session.set_keepalive(None);
            }
            return to_http(answer);
        }
        let answer = match read_body(session).await {
            Ok(body) => {
                let header = session.req_header();
                self.router
                    .handle(request(header, &client, client_ip, &body, now))
            }
            Err(answer) => {
                // The rest of the body is not read: the connection cannot be reused.
                session.set_keepalive(None);
                answer
            }
        };
        to_http(answer)
    }
}

/// The router's view of a request.
fn request<'a>(
    header: &'a pingora::http::RequestHeader,
    client: &'a str,
    client_ip: Option<std::net::IpAddr>,
    body: &'a [u8],
    now: crate::clock::Now,
) -> AdminRequest<'a> {
    let field = |name: &str| header.headers.get(name).map(|v| v.as_bytes());
    AdminRequest {
        method: header.method.as_str(),
        path: header.uri.path(),
        authorization: field("authorization"),
        host: field("host"),
        origin: field("origin"),
        sec_fetch_site: field("sec-fetch-site"),
        client_ip,
        body,
        client,
        now,
    }
}

/// The whole request body, or the answer when it is too large or unreadable.
///
/// A body over [`MAX_BODY`] is still read and discarded up to [`DRAIN_LIMIT`]
/// so that closing the connection does not reset it before the client reads
/// the `413` (a close with unread data sends a TCP RST).
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, AdminResponse> {
    let declared = session
        .req_header()
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(response::too_large_response());
    }
    session.set_read_timeout(Some(BODY_READ_TIMEOUT));
    let mut body = Vec::new();
    let mut too_large = declared.is_some_and(|n| n > MAX_BODY as u64);
    let mut seen = 0usize;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                seen += chunk.len();
                if seen > MAX_BODY {
                    too_large = true;
                }
                if too_large {
                    if seen > DRAIN_LIMIT {
                        break;
                    }
                } else {
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::debug!("admin: cannot read a request body: {e}");
                return Err(response::bad_body_response(&e.to_string()));
            }
        }
    }
    if too_large {
        Err(response::too_large_response())
    } else {
        Ok(body)
    }
}

fn to_http(answer: AdminResponse) -> http::Response<Vec<u8>> {
    let mut builder = http::Response::builder()
        .status(answer.status)
        .header(CONTENT_TYPE, answer.content_type)
        .header(CONTENT_LENGTH, answer.body.len())
        .header(CACHE_CONTROL, "no-store");
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value);
    }
    builder.body(answer.body).unwrap_or_else(|e| {
        log::error!("admin: cannot build a response: {e}");
        let mut response = http::Response::new(Vec::new());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}
