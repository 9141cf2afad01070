//! The admin API (SPEC 5): a Pingora listening service on
//! `tether.admin.address`, built on Pingora's own HTTP app support
//! ([`HttpServer`] over [`ServeHttp`]). This file only moves bytes: it reads
//! the request body (at most [`MAX_BODY`]), hands everything to the pure
//! [`Router`], and writes its answer.
//!
//! - [`router`]: the routing table; [`auth`]: the token; [`response`]: the
//!   envelope and errors.
//! - One file per resource: [`load_balancers`], [`pools`] (and endpoints),
//!   [`session_persistence`], [`metrics`], [`cluster`] (this replica's link).

mod auth;
mod cluster;
mod load_balancers;
mod metrics;
mod pools;
mod response;
mod router;
mod session_persistence;
mod status;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use crate::changes::Changes;
use crate::config;
use response::{AdminResponse, MAX_BODY};
pub use router::{AdminRequest, Router};

/// How long the admin API waits for each read of a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a too-large body is read (and dropped) before answering `413`.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The admin application: the router, which holds the owner of changes.
pub struct AdminApp {
    router: Router,
}

/// The admin listening service for `admin`. Reads the token file once (its
/// content trimmed); an unreadable or empty file is an error.
pub fn service(
    changes: Arc<Changes>,
    admin: &config::Admin,
    cluster: Option<Arc<crate::cluster::Status>>,
) -> Result<Service<HttpServer<AdminApp>>, String> {
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
    let mut router = Router::new(token.as_deref(), changes);
    if let Some(status) = cluster {
        router = router.with_cluster(status);
    }
    let app = AdminApp { router };
    let mut service = Service::new("tether admin".to_string(), HttpServer::new_app(app));
    service.add_tcp(&admin.address);
    Ok(service)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let answer = match read_body(session).await {
            Ok(body) => {
                let client = session
                    .client_addr()
                    .map_or_else(|| "unknown".to_string(), |a| a.to_string());
                let header = session.req_header();
                self.router.handle(AdminRequest {
                    method: header.method.as_str(),
                    path: header.uri.path(),
                    authorization: header.headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
                    body: &body,
                    client: &client,
                    now: self.router.changes().state().clock.now(),
                })
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
