//! The admin API's routing table (SPEC 5): a pure function from a request
//! (method, path, `Authorization`, the fields the [`admission`] reads, body,
//! client, time) to an answer. No sockets: [`super`] reads the request and
//! writes the answer. [`Router::admit`] decides from the header alone, so a
//! refused request's body is never read. Each resource has its own file and
//! sees a [`Call`] (`call.rs`); changes go to [`Changes`], reads to the state.
//!
//! [`admission`]: super::admission

use std::net::IpAddr;
use std::sync::Arc;

use super::admission::{Admission, Head};
use super::auth::Auth;
use super::call::Call;
use super::response::{allow, too_large_response, AdminResponse, Answer, ApiError, MAX_BODY, TEXT};
use super::{
    cloudflare, cluster, load_balancers, metrics, objects, pools, session_persistence, status,
};
use crate::changes::Changes;
use crate::changes::ObjectKind;
use crate::clock::Now;

/// What the router needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    pub method: &'a str,
    /// The path as received (percent-encoded), without the query.
    pub path: &'a str,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The raw `Host`, `Origin` and `Sec-Fetch-Site` headers, if any.
    pub host: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub sec_fetch_site: Option<&'a [u8]>,
    /// The client's IP address, if known.
    pub client_ip: Option<IpAddr>,
    /// Empty when only the header has been read ([`Router::admit`]).
    pub body: &'a [u8],
    /// The client's address, for the log.
    pub client: &'a str,
    pub now: Now,
}

impl AdminRequest<'_> {
    fn head(&self) -> Head<'_> {
        Head {
            method: self.method,
            host: self.host,
            origin: self.origin,
            sec_fetch_site: self.sec_fetch_site,
            client_ip: self.client_ip,
        }
    }
}

/// The admin API: who is admitted, the token and the owner of changes.
pub struct Router {
    admission: Admission,
    auth: Auth,
    changes: Arc<Changes>,
    cluster: Option<Arc<crate::cluster::Status>>,
}

impl Router {
    /// `token`: every call but `/healthz` and the status page's files then
    /// needs `Authorization: Bearer <token>`. Without one, only loopback
    /// names are admitted as `Host` until [`Router::listening_on`] adds the
    /// listener's own address.
    pub fn new(token: Option<&str>, changes: Arc<Changes>) -> Self {
        Router {
            admission: Admission::new(None, token.is_some()),
            auth: Auth::new(token),
            changes,
            cluster: None,
        }
    }

    /// The listener's address as configured (`tether.admin.address`), which a
    /// tokenless listener also accepts as `Host`.
    pub fn listening_on(mut self, address: &str) -> Self {
        self.admission = Admission::new(Some(address), self.auth.is_set());
        self
    }

    /// Shows this replica's link to the cluster (`GET /v1/cluster`, metrics).
    pub fn with_cluster(mut self, status: Arc<crate::cluster::Status>) -> Self {
        self.cluster = Some(status);
        self
    }

    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    /// What can be decided from the request's header alone, before its body
    /// is read: the [admission](super::admission) (`403`), then the token
    /// (`401`) for every route that needs one. `Err` is the answer.
    /// Under `/client/v4` the refusal takes Cloudflare's error shape.
    pub fn admit(&self, req: &AdminRequest<'_>) -> Result<(), AdminResponse> {
        self.admission_and_token(req)
            .map_err(|answer| cloudflare::reshape(req.path, answer))
    }

    fn admission_and_token(&self, req: &AdminRequest<'_>) -> Result<(), AdminResponse> {
        if let Err(e) = self.admission.check(&req.head()) {
            if let Some(message) = e.messages.first() {
                log::debug!(
                    "admin: refused {} {} from {}: {message}",
                    req.method,
                    req.path,
                    req.client
                );
            }
            return Err(e.envelope());
        }
        if is_public(req.path) {
            return Ok(());
        }
        self.auth
            .check(req.authorization, req.client, req.now.ms)
            .map_err(|e| {
                e.envelope()
                    .with_header("www-authenticate", "Bearer realm=\"tether admin\"".into())
            })
    }

    /// The whole request: [`Router::admit`], then the route.
    pub fn handle(&self, req: AdminRequest<'_>) -> AdminResponse {
        if let Err(answer) = self.admit(&req) {
            return answer;
        }
        if req.body.len() > MAX_BODY {
            return cloudflare::reshape(req.path, too_large_response());
        }
        let method = if req.method == "HEAD" {
            "GET"
        } else {
            req.method
        };
        let segments = split_path(req.path);
        let segs: Vec<&str> = segments
            .as_ref()
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if segs == ["healthz"] {
            return match allow(method, &["GET"]) {
                Ok(()) => AdminResponse::new(200, TEXT, b"ok".to_vec()),
                Err(e) => e.envelope(),
            };
        }
        // The status page holds no data: it loads without a token, and
        // every call it makes needs one (docs/status-page.md).
        if let Some(file) = status::file(&segs) {
            return match status::serve(method, file) {
                Ok(page) => page,
                Err(e) => e.envelope(),
            };
        }
        let call = Call::new(
            method,
            req.body,
            req.now,
            &self.changes,
            self.cluster.as_deref(),
        );
        // Cloudflare's v4 Load Balancing API, in its own envelope.
        if let ["client", "v4", rest @ ..] = segs.as_slice() {
            return cloudflare::handle(&call, &self.changes, rest);
        }
        let answer = if segments.is_none() {
            Err(ApiError::new(404, format!("no route for {}", req.path)))
        } else {
            route(&call, &segs, req.path)
        };
        let rackspace = matches!(
            segs.as_slice(),
            ["v1", "load_balancers", _, "session_persistence"]
        );
        match answer {
            Ok(response) => response,
            Err(e) if rackspace && !matches!(e.status, 401 | 405 | 413) => e.fault(),
            Err(e) => e.envelope(),
        }
    }
}

/// Whether `path` is served without the token: `/healthz` and the status
/// page's files, which hold no data.
fn is_public(path: &str) -> bool {
    let segments = split_path(path).unwrap_or_default();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    segs == ["healthz"] || status::file(&segs).is_some()
}

/// A `PUT` or `DELETE` of a whole object.
fn writes(call: &Call<'_>) -> bool {
    matches!(call.method, "PUT" | "DELETE")
}

/// The routing table.
fn route(call: &Call<'_>, segs: &[&str], path: &str) -> Answer {
    match segs {
        ["metrics"] => metrics::handle(call),
        ["v1", "cluster"] => cluster::handle(call),
        ["v1", "status"] => status::handle(call),
        ["v1", "objects", section] => objects::list(call, section),
        ["v1", "monitors"] => objects::list(call, "monitors"),
        ["v1", "monitors", name] => objects::monitor(call, name),
        ["v1", "load_balancers"] => load_balancers::list(call),
        ["v1", "load_balancers", name] if writes(call) => {
            objects::write(call, ObjectKind::LoadBalancer, name)
        }
        ["v1", "load_balancers", name] => load_balancers::one(call, name),
        ["v1", "load_balancers", name, "session_persistence"] => {
            session_persistence::handle(call, name)
        }
        ["v1", "pools"] => pools::list(call),
        ["v1", "pools", name] if writes(call) => objects::write(call, ObjectKind::Pool, name),
        ["v1", "pools", name] => pools::one(call, name),
        ["v1", "pools", pool, "endpoints", endpoint] => pools::endpoint_call(call, pool, endpoint),
        _ => Err(ApiError::new(404, format!("no route for {path}"))),
    }
}

/// The path's segments, percent-decoded; `None` if a segment is not UTF-8
/// after decoding. One trailing `/` is ignored.
fn split_path(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;
