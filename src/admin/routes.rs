//! The admin API's router (SPEC 5): a pure function from a request (method,
//! path, `Authorization`, body, the time) to a response (status, content type,
//! body). No sockets: [`super`] reads the request and writes the answer.
//!
//! Responses use Cloudflare's envelope `{"success", "errors", "result"}`,
//! except `…/session_persistence`, which is Rackspace's resource and faults.

use std::collections::BTreeMap;

use log::{info, warn};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use super::views::{self, Envelope};
use crate::clock::Now;
use crate::config::{self, SessionAffinity};
use crate::state::{LbState, NotFound, State};

/// Request bodies larger than this are refused with `413`.
pub const MAX_BODY: usize = 64 * 1024;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

/// What the router needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    pub method: &'a str,
    /// The path as received (percent-encoded), without the query.
    pub path: &'a str,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    pub now: Now,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// More headers (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl AdminResponse {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        AdminResponse {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    fn json(status: u16, value: &impl Serialize) -> Self {
        // Serialising these plain structs cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self::new(status, JSON, body)
    }

    fn ok(result: &impl Serialize) -> Self {
        Self::json(200, &Envelope::ok(result))
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The body as text (tests and logs).
    #[cfg(test)]
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<binary>")
    }
}

/// A refusal: status and one message per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: u16,
    messages: Vec<String>,
    /// `405`: the methods the path takes.
    allow: Option<&'static [&'static str]>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            messages: vec![message.into()],
            allow: None,
        }
    }
    fn bad_request(messages: Vec<String>) -> Self {
        ApiError {
            status: 400,
            messages,
            allow: None,
        }
    }

    /// In Cloudflare's envelope.
    fn envelope(self) -> AdminResponse {
        let response = AdminResponse::json(self.status, &Envelope::errors(&self.messages));
        self.finish(response)
    }

    /// As a Rackspace fault: `{"itemNotFound": {"code": 404, "message": ...}}`.
    fn fault(self) -> AdminResponse {
        let name = match self.status {
            400 => "badRequest",
            401 => "unauthorized",
            404 => "itemNotFound",
            405 => "methodNotAllowed",
            413 => "overLimit",
            422 => "unprocessableEntity",
            _ => "loadBalancerFault",
        };
        let body = serde_json::json!({
            name: {"code": self.status, "message": self.messages.join("; ")}
        });
        let response = AdminResponse::json(self.status, &body);
        self.finish(response)
    }

    fn finish(self, response: AdminResponse) -> AdminResponse {
        match self.allow {
            Some(methods) => response.with_header("allow", methods.join(", ")),
            None => response,
        }
    }
}

impl From<NotFound> for ApiError {
    fn from(e: NotFound) -> Self {
        ApiError::new(404, e.to_string())
    }
}

type Answer = Result<AdminResponse, ApiError>;

/// The keys `PATCH /v1/load_balancers/{name}` may change.
const LB_PATCHABLE: &[&str] = &[
    "enabled",
    "steering_policy",
    "session_affinity",
    "session_affinity_ttl",
    "session_affinity_attributes",
    "default_pools",
    "fallback_pool",
];
/// Keys of a load balancer that only the configuration file changes.
const LB_FIXED: &[&str] = &[
    "name",
    "random_steering",
    "adaptive_routing",
    "always_use_https",
];

/// The admin API: the token and the pools run-time changes are validated
/// against; the live [`State`] is passed to every call.
pub struct Router {
    /// SHA-256 of the token; compared in constant time.
    token: Option<[u8; 32]>,
    /// The running configuration's pools, for validating load balancer changes.
    pools: BTreeMap<String, config::Pool>,
    /// Serialises read-modify-write changes so none is lost.
    edits: parking_lot::Mutex<()>,
}

impl Router {
    /// `token`: every call but `/healthz` then needs `Authorization: Bearer <token>`.
    pub fn new(token: Option<&str>, pools: BTreeMap<String, config::Pool>) -> Self {
        Router {
            token: token.map(|t| digest(t.as_bytes())),
            pools,
            edits: parking_lot::Mutex::new(()),
        }
    }

    pub fn handle(&self, state: &State, req: AdminRequest<'_>) -> AdminResponse {
        if req.body.len() > MAX_BODY {
            return too_large();
        }
        // HEAD is GET without the body (Pingora leaves the body out).
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
        if let Err(e) = self.authorize(req.authorization) {
            return e
                .envelope()
                .with_header("www-authenticate", "Bearer realm=\"tether admin\"".into());
        }
        let persistence = matches!(
            segs.as_slice(),
            ["v1", "load_balancers", _, "session_persistence"]
        );
        let answer = if segments.is_none() {
            Err(ApiError::new(404, format!("no route for {}", req.path)))
        } else {
            self.route(state, method, &segs, req)
        };
        match answer {
            Ok(response) => response,
            Err(e) if persistence && !matches!(e.status, 401 | 405 | 413) => e.fault(),
            Err(e) => e.envelope(),
        }
    }

    fn route(&self, state: &State, method: &str, segs: &[&str], req: AdminRequest<'_>) -> Answer {
        let now = req.now;
        match segs {
            ["metrics"] => {
                allow(method, &["GET"])?;
                Ok(AdminResponse::new(
                    200,
                    PROMETHEUS,
                    render_metrics(state).into_bytes(),
                ))
            }
            ["v1", "load_balancers"] => {
                allow(method, &["GET"])?;
                let table = state.load_balancers();
                let mut all: Vec<_> = table
                    .all()
                    .map(|lb| views::load_balancer(&lb.conf))
                    .collect();
                all.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(AdminResponse::ok(&all))
            }
            ["v1", "load_balancers", name] => {
                allow(method, &["GET", "PATCH"])?;
                let view = if method == "GET" {
                    views::load_balancer(&find_lb(state, name)?.conf)
                } else {
                    self.patch_load_balancer(state, name, req.body)?
                };
                Ok(AdminResponse::ok(&view))
            }
            ["v1", "load_balancers", name, "session_persistence"] => {
                allow(method, &["GET", "PUT", "DELETE"])?;
                let affinity = match method {
                    "GET" => find_lb(state, name)?.conf.session_affinity,
                    "PUT" => self.put_persistence(state, name, req.body)?,
                    _ => self.delete_persistence(state, name)?,
                };
                Ok(AdminResponse::json(
                    200,
                    &views::session_persistence(affinity),
                ))
            }
            ["v1", "pools"] => {
                allow(method, &["GET"])?;
                let all: Vec<_> = (0..state.pools.len())
                    .map(|p| views::pool(state, p, now))
                    .collect();
                Ok(AdminResponse::ok(&all))
            }
            ["v1", "pools", name] => {
                allow(method, &["GET"])?;
                let p = state
                    .pool_index(name)
                    .ok_or_else(|| NotFound::Pool(name.to_string()))?;
                Ok(AdminResponse::ok(&views::pool(state, p, now)))
            }
            ["v1", "pools", pool, "endpoints", endpoint] => {
                allow(method, &["GET", "PATCH"])?;
                let at = state.find_endpoint(pool, endpoint)?;
                if method == "PATCH" {
                    self.patch_endpoint(state, pool, endpoint, req.body, now)?;
                }
                Ok(AdminResponse::ok(&views::endpoint(
                    state,
                    at.pool,
                    at.endpoint,
                    now,
                )))
            }
            _ => Err(ApiError::new(404, format!("no route for {}", req.path))),
        }
    }

    fn authorize(&self, header: Option<&[u8]>) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(header) = header else {
            return Err(ApiError::new(
                401,
                "missing Authorization header: send \"Authorization: Bearer <token>\"",
            ));
        };
        let presented = bearer_token(header).ok_or_else(|| {
            ApiError::new(401, "the Authorization header must be \"Bearer <token>\"")
        })?;
        if constant_time_eq(&digest(presented), expected) {
            Ok(())
        } else {
            Err(ApiError::new(401, "wrong token"))
        }
    }

    /// `PATCH /v1/load_balancers/{name}`: overlay the body on the current
    /// settings and validate the result exactly as the file is.
    fn patch_load_balancer(
        &self,
        state: &State,
        name: &str,
        body: &[u8],
    ) -> Result<views::LoadBalancerView, ApiError> {
        find_lb(state, name)?;
        let patch = json_object(body)?;
        let problems: Vec<String> = patch
            .keys()
            .filter(|k| !LB_PATCHABLE.contains(&k.as_str()))
            .map(|k| {
                if LB_FIXED.contains(&k.as_str()) {
                    format!("{k}: cannot be changed at run time")
                } else {
                    format!("{k}: unknown field")
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(ApiError::bad_request(problems));
        }
        let _edit = self.edits.lock();
        let current = find_lb(state, name)?;
        let new = self.overlay(&current.conf, &patch)?;
        Ok(views::load_balancer(&commit(state, &current.conf, new)?))
    }

    /// `current` with `patch` applied, validated as the file is. A changed
    /// `session_affinity` without a `session_affinity_ttl` takes the new
    /// type's default TTL.
    fn overlay(
        &self,
        current: &config::LoadBalancer,
        patch: &Map<String, Json>,
    ) -> Result<config::LoadBalancer, ApiError> {
        let mut value = config::load_balancer_to_value(current);
        let serde_yaml::Value::Mapping(map) = &mut value else {
            return Err(ApiError::new(
                500,
                "internal error: settings are not a mapping",
            ));
        };
        for (key, v) in patch {
            let v =
                serde_yaml::to_value(v).map_err(|e| ApiError::new(400, format!("{key}: {e}")))?;
            let key_value = serde_yaml::Value::String(key.clone());
            match (map.get_mut(&key_value), v) {
                // Attributes are merged key by key into the current ones.
                (Some(serde_yaml::Value::Mapping(attrs)), serde_yaml::Value::Mapping(changes))
                    if key == "session_affinity_attributes" =>
                {
                    for (k, v) in changes {
                        attrs.insert(k, v);
                    }
                }
                (_, v) => {
                    map.insert(key_value, v);
                }
            }
        }
        let ttl_given = patch.contains_key("session_affinity_ttl");
        if patch.contains_key("session_affinity") && !ttl_given {
            map.remove("session_affinity_ttl");
        }
        let mut new = config::load_balancer_from_value(&current.name, &value, &self.pools, "")
            .map_err(|e| ApiError::bad_request(e.0.iter().map(|e| e.to_string()).collect()))?;
        if !ttl_given && new.session_affinity == current.session_affinity {
            new.session_affinity_ttl = current.session_affinity_ttl;
        }
        Ok(new)
    }

    /// `PUT …/session_persistence`: `HTTP_COOKIE` → `cookie`, `SOURCE_IP` →
    /// `source_ip`, through the same validation as `PATCH`.
    fn put_persistence(
        &self,
        state: &State,
        name: &str,
        body: &[u8],
    ) -> Result<SessionAffinity, ApiError> {
        find_lb(state, name)?;
        let affinity = persistence_type(&json_object(body)?)?;
        let _edit = self.edits.lock();
        let current = find_lb(state, name)?;
        let patch = Map::from_iter([(
            "session_affinity".to_string(),
            Json::from(views::affinity_name(affinity)),
        )]);
        let new = self.overlay(&current.conf, &patch)?;
        Ok(commit(state, &current.conf, new)?.session_affinity)
    }

    /// `DELETE …/session_persistence`: affinity off; `422` when already off.
    fn delete_persistence(&self, state: &State, name: &str) -> Result<SessionAffinity, ApiError> {
        let _edit = self.edits.lock();
        let current = find_lb(state, name)?;
        if current.conf.session_affinity == SessionAffinity::None {
            return Err(ApiError::new(
                422,
                format!(
                    "session persistence is already disabled on load balancer {:?}",
                    current.conf.name
                ),
            ));
        }
        let patch = Map::from_iter([("session_affinity".to_string(), Json::from("none"))]);
        let new = self.overlay(&current.conf, &patch)?;
        Ok(commit(state, &current.conf, new)?.session_affinity)
    }

    /// `PATCH /v1/pools/{pool}/endpoints/{endpoint}`: `enabled` (disabling
    /// starts the drain) and `weight`.
    fn patch_endpoint(
        &self,
        state: &State,
        pool: &str,
        endpoint: &str,
        body: &[u8],
        now: Now,
    ) -> Result<(), ApiError> {
        let patch = json_object(body)?;
        let mut problems = Vec::new();
        let mut enabled = None;
        let mut weight = None;
        for (key, v) in &patch {
            match key.as_str() {
                "enabled" => match v {
                    Json::Bool(b) => enabled = Some(*b),
                    other => problems.push(format!(
                        "enabled: expected a boolean, got {}",
                        describe(other)
                    )),
                },
                "weight" => match v {
                    Json::Number(n) => match n.as_f64() {
                        Some(w) if (0.0..=1.0).contains(&w) => weight = Some(w),
                        _ => problems.push(format!("weight: must be between 0 and 1, got {n}")),
                    },
                    other => problems.push(format!(
                        "weight: expected a number, got {}",
                        describe(other)
                    )),
                },
                "name" | "address" | "header" => {
                    problems.push(format!("{key}: cannot be changed at run time"))
                }
                _ => problems.push(format!("{key}: unknown field")),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::bad_request(problems));
        }
        let _edit = self.edits.lock();
        let at = state.find_endpoint(pool, endpoint)?;
        let e = state.endpoint(at);
        let mut changes = Vec::new();
        if let Some(enabled) = enabled {
            let was = e.enabled();
            state.set_endpoint_enabled(at, enabled, now.ms);
            if was != enabled {
                changes.push(format!("enabled {was} -> {enabled}"));
            }
        }
        if let Some(weight) = weight {
            let was = e.weight();
            if was != weight {
                state.set_endpoint_weight(at, weight);
                changes.push(format!("weight {was} -> {weight}"));
            }
        }
        if changes.is_empty() {
            info!("admin: pool {pool} endpoint {endpoint}: no change");
        } else {
            info!(
                "admin: pool {pool} endpoint {endpoint}: {}",
                changes.join(", ")
            );
            persist(state);
        }
        Ok(())
    }
}

/// Replaces the load balancer, logs what changed, saves the state file.
fn commit(
    state: &State,
    old: &config::LoadBalancer,
    new: config::LoadBalancer,
) -> Result<config::LoadBalancer, ApiError> {
    let changes = diff(
        &serde_json::to_value(views::load_balancer(old)).unwrap_or_default(),
        &serde_json::to_value(views::load_balancer(&new)).unwrap_or_default(),
        "",
    );
    if changes.is_empty() {
        info!("admin: load balancer {}: no change", new.name);
        return Ok(new);
    }
    state.replace_load_balancer(new.clone())?;
    info!("admin: load balancer {}: {}", new.name, changes.join(", "));
    persist(state);
    Ok(new)
}

fn persist(state: &State) {
    if let Err(e) = crate::persist::save_after_change(state) {
        warn!("admin: the change is live but the state file was not written: {e}");
    }
}

/// `key old -> new` for every leaf that differs (dotted paths for nested objects).
fn diff(old: &Json, new: &Json, prefix: &str) -> Vec<String> {
    match (old, new) {
        (Json::Object(a), Json::Object(b)) => b
            .iter()
            .flat_map(|(k, v)| {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff(a.get(k).unwrap_or(&Json::Null), v, &path)
            })
            .collect(),
        (a, b) if a == b => Vec::new(),
        (a, b) => vec![format!("{prefix} {} -> {}", plain(a), plain(b))],
    }
}

/// Strings as they are, everything else as JSON.
fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `HTTP_COOKIE` / `SOURCE_IP` out of `{"sessionPersistence": {"persistenceType": ...}}`.
fn persistence_type(body: &Map<String, Json>) -> Result<SessionAffinity, ApiError> {
    const FIELD: &str = "sessionPersistence.persistenceType";
    let mut problems: Vec<String> = body
        .keys()
        .filter(|k| *k != "sessionPersistence")
        .map(|k| format!("{k}: unknown field"))
        .collect();
    let affinity = match body.get("sessionPersistence") {
        None => {
            problems.push("sessionPersistence: required".into());
            None
        }
        Some(Json::Object(sp)) => {
            problems.extend(
                sp.keys()
                    .filter(|k| *k != "persistenceType")
                    .map(|k| format!("sessionPersistence.{k}: unknown field")),
            );
            match sp.get("persistenceType") {
                None => {
                    problems.push(format!("{FIELD}: required"));
                    None
                }
                Some(Json::String(t)) if t == "HTTP_COOKIE" => Some(SessionAffinity::Cookie),
                Some(Json::String(t)) if t == "SOURCE_IP" => Some(SessionAffinity::SourceIp),
                Some(other) => {
                    problems.push(format!(
                        "{FIELD}: must be HTTP_COOKIE or SOURCE_IP, got {}",
                        describe(other)
                    ));
                    None
                }
            }
        }
        Some(other) => {
            problems.push(format!(
                "sessionPersistence: expected an object, got {}",
                describe(other)
            ));
            None
        }
    };
    match affinity {
        Some(a) if problems.is_empty() => Ok(a),
        _ => Err(ApiError::bad_request(problems)),
    }
}

fn find_lb(state: &State, name: &str) -> Result<std::sync::Arc<LbState>, ApiError> {
    state
        .load_balancers()
        .named(&name.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| NotFound::LoadBalancer(name.to_string()).into())
}

fn allow(method: &str, methods: &'static [&'static str]) -> Result<(), ApiError> {
    if methods.contains(&method) {
        Ok(())
    } else {
        Err(ApiError {
            status: 405,
            messages: vec![format!(
                "method {method} is not allowed here (allowed: {})",
                methods.join(", ")
            )],
            allow: Some(methods),
        })
    }
}

fn too_large() -> AdminResponse {
    ApiError::new(
        413,
        format!("the request body is larger than {MAX_BODY} bytes"),
    )
    .envelope()
}

/// The `413` answer, for the server to send without reading the body.
pub fn too_large_response() -> AdminResponse {
    too_large()
}

/// The `400` answer when the body cannot be read.
pub fn bad_body_response(why: &str) -> AdminResponse {
    ApiError::new(400, format!("cannot read the request body: {why}")).envelope()
}

/// A JSON object body.
fn json_object(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::new(
            400,
            format!("the body must be a JSON object, got {}", describe(&other)),
        )),
        Err(e) => Err(ApiError::new(400, format!("invalid JSON: {e}"))),
    }
}

/// `a string ("x")`, `a number (3)`, `null`, ...
fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("a boolean ({b})"),
        Json::Number(n) => format!("a number ({n})"),
        Json::String(s) => format!("a string ({})", config::read::quote(s)),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// The path's segments, percent-decoded; `None` if a segment is not UTF-8
/// after decoding. One trailing `/` is ignored.
fn split_path(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').map(percent_decode).collect()
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let scheme = header.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = header[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal without an early exit: the time does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn render_metrics(state: &State) -> String {
    crate::metrics::render(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::clock::MONOTONIC_BASE;
    use crate::config::OriginSteering;
    use crate::fixtures::{config, pool, set_health};
    use crate::state::LastCheck;
    use serde_json::json;

    const NOW: Now = Now {
        ms: MONOTONIC_BASE + 5_000,
        unix: 1_700_000_000,
    };

    /// Pools `p` (3 endpoints) and `q` (2); load balancers `*` (p) and
    /// `www.example.com` (p, then q).
    fn setup(token: Option<&str>) -> (Router, State) {
        let mut cfg = config(
            vec![
                pool("p", 3, OriginSteering::Random),
                pool("q", 2, OriginSteering::Hash),
            ],
            &["p"],
            None,
        );
        let mut www = cfg.load_balancers["*"].clone();
        www.name = "www.example.com".into();
        www.default_pools = vec!["p".into(), "q".into()];
        cfg.load_balancers.insert(www.name.clone(), www);
        let state = State::new(&cfg, CookieKeys::random());
        (Router::new(token, cfg.pools.clone()), state)
    }

    struct Reply {
        status: u16,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        text: String,
    }

    impl Reply {
        fn json(&self) -> Json {
            serde_json::from_str(&self.text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
        }
        /// The result of a successful enveloped answer.
        fn result(&self) -> Json {
            let body = self.json();
            assert_eq!(self.status, 200, "{}", self.text);
            assert_eq!(body["success"], true, "{}", self.text);
            assert_eq!(body["errors"], json!([]));
            body["result"].clone()
        }
        /// The messages of an enveloped error, checking its status.
        fn errors(&self, status: u16) -> Vec<String> {
            assert_eq!(self.status, status, "{}", self.text);
            assert_eq!(self.content_type, JSON);
            let body = self.json();
            assert_eq!(body["success"], false, "{}", self.text);
            assert_eq!(body["result"], Json::Null);
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string())
                .collect()
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn call_full(
        router: &Router,
        state: &State,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
        now: Now,
    ) -> Reply {
        let r = router.handle(
            state,
            AdminRequest {
                method,
                path,
                authorization: auth.map(str::as_bytes),
                body,
                now,
            },
        );
        Reply {
            status: r.status,
            content_type: r.content_type,
            text: r.text().to_string(),
            headers: r.headers,
        }
    }

    fn call(router: &Router, state: &State, method: &str, path: &str, body: &str) -> Reply {
        call_full(router, state, method, path, None, body.as_bytes(), NOW)
    }

    fn lb_conf(state: &State, name: &str) -> config::LoadBalancer {
        state.load_balancers().named(name).unwrap().conf.clone()
    }

    #[test]
    fn healthz_needs_no_token() {
        let (router, state) = setup(Some("s3cret"));
        let r = call(&router, &state, "GET", "/healthz", "");
        assert_eq!(
            (r.status, r.content_type, r.text.as_str()),
            (200, TEXT, "ok")
        );
        assert_eq!(call(&router, &state, "HEAD", "/healthz", "").status, 200);
        let r = call(&router, &state, "POST", "/healthz", "");
        assert_eq!(
            r.errors(405),
            ["method POST is not allowed here (allowed: GET)"]
        );
        assert_eq!(r.header("allow"), Some("GET"));
    }

    #[test]
    fn the_token_is_required_everywhere_else() {
        let (router, state) = setup(Some("s3cret"));
        let get = |auth: Option<&str>, path: &str| {
            call_full(&router, &state, "GET", path, auth, b"", NOW)
        };
        for path in ["/v1/pools", "/metrics", "/v1/load_balancers", "/nowhere"] {
            let r = get(None, path);
            assert_eq!(
                r.errors(401),
                ["missing Authorization header: send \"Authorization: Bearer <token>\""]
            );
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"tether admin\"")
            );
        }
        assert_eq!(
            get(Some("Bearer wrong"), "/v1/pools").errors(401),
            ["wrong token"]
        );
        assert_eq!(
            get(Some("Bearer s3cre"), "/v1/pools").errors(401),
            ["wrong token"]
        );
        assert_eq!(
            get(Some("Basic s3cret"), "/v1/pools").errors(401),
            ["the Authorization header must be \"Bearer <token>\""]
        );
        assert_eq!(get(Some("Bearer "), "/v1/pools").status, 401);
        assert_eq!(get(Some("Bearer s3cret"), "/v1/pools").status, 200);
        assert_eq!(get(Some("bearer  s3cret "), "/v1/pools").status, 200);
        assert_eq!(get(Some("Bearer s3cret"), "/nowhere").status, 404);

        // Without a token file nothing is asked.
        let (open, state) = setup(None);
        let r = call_full(
            &open,
            &state,
            "GET",
            "/v1/pools",
            Some("Bearer x"),
            b"",
            NOW,
        );
        assert_eq!(r.status, 200);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(&digest(b"a"), &digest(b"a")));
        assert!(!constant_time_eq(&digest(b"a"), &digest(b"b")));
        assert_eq!(bearer_token(b"BEARER tok"), Some(&b"tok"[..]));
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearertok"), None);
    }

    #[test]
    fn unknown_names_and_routes_are_404() {
        let (router, state) = setup(None);
        let cases = [
            (
                "GET",
                "/v1/load_balancers/nope.example.com",
                r#"no load balancer named "nope.example.com""#,
            ),
            (
                "PATCH",
                "/v1/load_balancers/nope",
                r#"no load balancer named "nope""#,
            ),
            ("GET", "/v1/pools/nope", r#"no pool named "nope""#),
            (
                "GET",
                "/v1/pools/nope/endpoints/p-0",
                r#"no pool named "nope""#,
            ),
            (
                "PATCH",
                "/v1/pools/p/endpoints/nope",
                r#"pool "p" has no endpoint named "nope""#,
            ),
            ("GET", "/v1/nothing", "no route for /v1/nothing"),
            ("GET", "/", "no route for /"),
            (
                "GET",
                "/v1/pools/p/endpoints",
                "no route for /v1/pools/p/endpoints",
            ),
            ("GET", "/v1/pools/%ff", "no route for /v1/pools/%ff"),
        ];
        for (method, path, message) in cases {
            let r = call(&router, &state, method, path, r#"{"enabled": true}"#);
            assert_eq!(r.errors(404), [message], "{method} {path}");
        }
        // 404 before the body is looked at.
        let r = call(
            &router,
            &state,
            "PATCH",
            "/v1/load_balancers/nope",
            "not json",
        );
        assert_eq!(r.status, 404);
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        let (router, state) = setup(None);
        for (method, path, allowed) in [
            ("POST", "/v1/pools", "GET"),
            ("DELETE", "/v1/pools/p", "GET"),
            ("PUT", "/v1/load_balancers", "GET"),
            ("DELETE", "/v1/load_balancers/*", "GET, PATCH"),
            (
                "PATCH",
                "/v1/load_balancers/*/session_persistence",
                "GET, PUT, DELETE",
            ),
            ("PUT", "/v1/pools/p/endpoints/p-0", "GET, PATCH"),
            ("POST", "/metrics", "GET"),
        ] {
            let r = call(&router, &state, method, path, "");
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some(allowed), "{method} {path}");
            // Always in the envelope, session_persistence too.
            r.errors(405);
        }
    }

    #[test]
    fn bodies_over_64_kib_are_413() {
        let (router, state) = setup(None);
        let body = vec![b' '; MAX_BODY + 1];
        let r = call_full(
            &router,
            &state,
            "PATCH",
            "/v1/load_balancers/*",
            None,
            &body,
            NOW,
        );
        assert_eq!(
            r.errors(413),
            ["the request body is larger than 65536 bytes"]
        );
        // Exactly the limit is read (and here is not JSON).
        let body = vec![b' '; MAX_BODY];
        let r = call_full(
            &router,
            &state,
            "PATCH",
            "/v1/load_balancers/*",
            None,
            &body,
            NOW,
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let (router, state) = setup(None);
        let r = call(&router, &state, "GET", "/metrics", "");
        assert_eq!((r.status, r.content_type), (200, PROMETHEUS));
    }

    #[test]
    fn load_balancers_list_and_one() {
        let (router, state) = setup(None);
        let list = call(&router, &state, "GET", "/v1/load_balancers", "").result();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|lb| lb["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["*", "www.example.com"]);
        let one = call(
            &router,
            &state,
            "GET",
            "/v1/load_balancers/www.example.com",
            "",
        )
        .result();
        assert_eq!(
            one,
            json!({
                "name": "www.example.com",
                "enabled": true,
                "default_pools": ["p", "q"],
                "fallback_pool": null,
                "steering_policy": "off",
                "random_steering": {"default_weight": 1.0, "pool_weights": {}},
                "session_affinity": "none",
                "session_affinity_ttl": 0,
                "session_affinity_attributes": {
                    "samesite": "Auto",
                    "secure": "Auto",
                    "drain_duration": 0,
                    "zero_downtime_failover": "none",
                    "headers": [],
                    "require_all_headers": false
                },
                "adaptive_routing": {"failover_across_pools": false},
                "always_use_https": false
            })
        );
        // The catch-all by `*` or `%2A`; host names case-insensitively; a trailing slash.
        for path in [
            "/v1/load_balancers/*",
            "/v1/load_balancers/%2A",
            "/v1/load_balancers/%2a/",
        ] {
            let r = call(&router, &state, "GET", path, "").result();
            assert_eq!(r["name"], "*", "{path}");
        }
        let r = call(
            &router,
            &state,
            "GET",
            "/v1/load_balancers/WWW.Example.COM",
            "",
        )
        .result();
        assert_eq!(r["name"], "www.example.com");
    }

    #[test]
    fn patch_changes_the_running_load_balancer() {
        let (router, state) = setup(None);
        let path = "/v1/load_balancers/www.example.com";
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"session_affinity": "cookie", "session_affinity_attributes": {"samesite": "Strict", "drain_duration": 30}, "fallback_pool": "q", "steering_policy": "random"}"#,
        )
        .result();
        assert_eq!(r["session_affinity"], "cookie");
        assert_eq!(r["session_affinity_ttl"], 82_800);
        assert_eq!(r["session_affinity_attributes"]["samesite"], "Strict");
        assert_eq!(r["fallback_pool"], "q");
        assert_eq!(r["steering_policy"], "random");
        let live = state
            .load_balancers()
            .named("www.example.com")
            .unwrap()
            .clone();
        assert_eq!(live.conf.session_affinity, SessionAffinity::Cookie);
        assert_eq!(live.drain_ms, 30_000);
        assert_eq!(live.fallback_pool, state.pool_index("q"));
        // The other load balancer is untouched.
        assert_eq!(lb_conf(&state, "*").session_affinity, SessionAffinity::None);

        // Attributes merge key by key; a TTL in range is kept.
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"session_affinity_attributes": {"zero_downtime_failover": "sticky"}, "session_affinity_ttl": 3600}"#,
        )
        .result();
        let attrs = &r["session_affinity_attributes"];
        assert_eq!(
            (
                &attrs["samesite"],
                &attrs["drain_duration"],
                &attrs["zero_downtime_failover"]
            ),
            (&json!("Strict"), &json!(30), &json!("sticky"))
        );
        assert_eq!(r["session_affinity_ttl"], 3600);

        // The same type again keeps its TTL; a new type takes its default.
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"session_affinity": "cookie"}"#,
        )
        .result();
        assert_eq!(r["session_affinity_ttl"], 3600);
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"session_affinity": "source_ip"}"#,
        )
        .result();
        assert_eq!(r["session_affinity_ttl"], 1800);

        // null clears the fallback pool.
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"fallback_pool": null, "enabled": false}"#,
        )
        .result();
        assert_eq!(
            (&r["fallback_pool"], &r["enabled"]),
            (&Json::Null, &json!(false))
        );
        let live = state
            .load_balancers()
            .named("www.example.com")
            .unwrap()
            .clone();
        assert_eq!(live.fallback_pool, None);
        assert!(!live.conf.enabled);

        // An empty patch changes nothing.
        let before = lb_conf(&state, "www.example.com");
        call(&router, &state, "PATCH", path, "{}").result();
        assert_eq!(lb_conf(&state, "www.example.com"), before);
    }

    #[test]
    fn bad_patches_are_400_naming_the_field_and_change_nothing() {
        let (router, state) = setup(None);
        let path = "/v1/load_balancers/*";
        call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"session_affinity": "cookie"}"#,
        )
        .result();
        let before = lb_conf(&state, "*");
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"session_affinity_ttl": 10}"#,
                &["session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie, got 10"],
            ),
            (
                r#"{"session_affinity": "source_ip", "session_affinity_ttl": 7200}"#,
                &["session_affinity_ttl: must be between 30 and 3600 for session_affinity source_ip, got 7200"],
            ),
            (
                r#"{"random_steering": {}, "foo": 1, "enabled": true}"#,
                &["foo: unknown field", "random_steering: cannot be changed at run time"],
            ),
            (r#"{"always_use_https": true}"#, &["always_use_https: cannot be changed at run time"]),
            (r#"{"name": "x"}"#, &["name: cannot be changed at run time"]),
            (r#"{"default_pools": ["p", "nope"]}"#, &[r#"default_pools[1]: no pool named "nope""#]),
            (r#"{"fallback_pool": "nope"}"#, &[r#"fallback_pool: no pool named "nope""#]),
            (r#"{"enabled": "yes"}"#, &[r#"enabled: expected a boolean, got a string ("yes")"#]),
            (
                r#"{"steering_policy": "fastest"}"#,
                &[r#"steering_policy: must be one of "", off, random, least_outstanding_requests, dynamic_latency; got "fastest""#],
            ),
            (
                r#"{"session_affinity_attributes": {"samesite": "None", "secure": "Never"}}"#,
                &["session_affinity_attributes.secure: must not be Never when samesite is None (browsers reject SameSite=None without Secure)"],
            ),
            (
                r#"{"session_affinity": "header"}"#,
                &["session_affinity_attributes.headers: must name at least one header when session_affinity is header"],
            ),
            (
                r#"{"session_affinity_attributes": {"drain": 5}}"#,
                &["session_affinity_attributes.drain: unknown key (expected one of: samesite, secure, drain_duration, zero_downtime_failover, headers, require_all_headers)"],
            ),
        ];
        for (body, expected) in cases {
            let r = call(&router, &state, "PATCH", path, body);
            assert_eq!(r.errors(400), *expected, "{body}");
            assert_eq!(lb_conf(&state, "*"), before, "{body}");
        }
        let r = call(&router, &state, "PATCH", path, "{not json");
        let e = r.errors(400);
        assert!(e[0].starts_with("invalid JSON: "), "{e:?}");
        let r = call(&router, &state, "PATCH", path, "[1]");
        assert_eq!(
            r.errors(400),
            ["the body must be a JSON object, got an array"]
        );
        let r = call(&router, &state, "PATCH", path, "");
        assert_eq!(r.status, 400);
        assert_eq!(lb_conf(&state, "*"), before);
    }

    #[test]
    fn pools_show_health_weight_and_last_check() {
        let (router, state) = setup(None);
        set_health(&state, "q", &[false, true]);
        let q0 = state.find_endpoint("q", "q-0").unwrap();
        state.endpoint(q0).record_check(LastCheck {
            unix_ms: 1_700_000_000_123,
            failure: Some("connect: ConnectRefused".into()),
        });
        let q1 = state.find_endpoint("q", "q-1").unwrap();
        state.endpoint(q1).record_check(LastCheck {
            unix_ms: 1_700_000_001_000,
            failure: None,
        });
        state.set_endpoint_weight(q1, 0.25);
        let list = call(&router, &state, "GET", "/v1/pools", "").result();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["p", "q"]);
        let q = call(&router, &state, "GET", "/v1/pools/q", "").result();
        assert_eq!(
            q,
            json!({
                "name": "q",
                "enabled": true,
                "minimum_origins": 1,
                "monitor": null,
                "origin_steering": {"policy": "hash"},
                "healthy": true,
                "endpoints": [
                    {
                        "name": "q-0", "address": "127.0.0.1:9000", "enabled": true,
                        "weight": 1.0, "healthy": false, "in_flight": 0, "draining": [],
                        "last_check": {"time": "2023-11-14T22:13:20.123Z", "ok": false, "failure": "connect: ConnectRefused"}
                    },
                    {
                        "name": "q-1", "address": "127.0.0.1:9001", "enabled": true,
                        "weight": 0.25, "healthy": true, "in_flight": 0, "draining": [],
                        "last_check": {"time": "2023-11-14T22:13:21.000Z", "ok": true, "failure": null}
                    }
                ]
            })
        );
        set_health(&state, "q", &[false, false]);
        let q = call(&router, &state, "GET", "/v1/pools/q", "").result();
        assert_eq!(q["healthy"], false);
        let p = call(&router, &state, "GET", "/v1/pools/p", "").result();
        assert_eq!(p["endpoints"][0]["last_check"], Json::Null);
        let e = call(&router, &state, "GET", "/v1/pools/q/endpoints/q-1", "").result();
        assert_eq!(e["weight"], 0.25);
    }

    #[test]
    fn endpoint_patch_disables_with_drain_and_sets_weight() {
        let (router, state) = setup(None);
        // www.example.com uses p with cookie affinity and a 30 s drain; * has no affinity.
        call(
            &router,
            &state,
            "PATCH",
            "/v1/load_balancers/www.example.com",
            r#"{"session_affinity": "cookie", "session_affinity_attributes": {"drain_duration": 30}}"#,
        )
        .result();
        let path = "/v1/pools/p/endpoints/p-1";
        let r = call(&router, &state, "PATCH", path, r#"{"enabled": false}"#).result();
        assert_eq!(r["enabled"], false);
        assert_eq!(
            r["draining"],
            json!([{"load_balancer": "www.example.com", "seconds_left": 30}])
        );
        let at = state.find_endpoint("p", "p-1").unwrap();
        assert_eq!(state.endpoint(at).disabled_since(), Some(NOW.ms));

        // Time passes: seconds left are rounded up, then the drain is over.
        let later = |ms: u64| Now {
            ms: NOW.ms + ms,
            ..NOW
        };
        let get = |now| call_full(&router, &state, "GET", path, None, b"", now).result();
        assert_eq!(get(later(10_500))["draining"][0]["seconds_left"], 20);
        assert_eq!(get(later(29_999))["draining"][0]["seconds_left"], 1);
        assert_eq!(get(later(30_000))["draining"], json!([]));

        // Disabling again does not restart the drain; enabling ends it.
        let r = call_full(
            &router,
            &state,
            "PATCH",
            path,
            None,
            br#"{"enabled": false}"#,
            later(10_000),
        )
        .result();
        assert_eq!(r["draining"][0]["seconds_left"], 20);
        let r = call(&router, &state, "PATCH", path, r#"{"enabled": true}"#).result();
        assert_eq!((&r["enabled"], &r["draining"]), (&json!(true), &json!([])));

        // Weight: the ring is rebuilt.
        let ring_before = state.pools[at.pool].ring().clone();
        let r = call(&router, &state, "PATCH", path, r#"{"weight": 0}"#).result();
        assert_eq!(r["weight"], 0.0);
        assert_eq!(state.endpoint(at).weight(), 0.0);
        assert!(!std::sync::Arc::ptr_eq(
            &ring_before,
            &state.pools[at.pool].ring()
        ));
        let r = call(
            &router,
            &state,
            "PATCH",
            path,
            r#"{"weight": 0.5, "enabled": true}"#,
        )
        .result();
        assert_eq!(r["weight"], 0.5);
    }

    #[test]
    fn bad_endpoint_patches_are_400() {
        let (router, state) = setup(None);
        let path = "/v1/pools/p/endpoints/p-0";
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"weight": 3}"#,
                &["weight: must be between 0 and 1, got 3"],
            ),
            (
                r#"{"weight": -0.5}"#,
                &["weight: must be between 0 and 1, got -0.5"],
            ),
            (
                r#"{"weight": "1"}"#,
                &[r#"weight: expected a number, got a string ("1")"#],
            ),
            (
                r#"{"enabled": 0}"#,
                &["enabled: expected a boolean, got a number (0)"],
            ),
            (
                r#"{"enabled": false, "healthy": true, "address": "x"}"#,
                &[
                    "address: cannot be changed at run time",
                    "healthy: unknown field",
                ],
            ),
        ];
        for (body, expected) in cases {
            let r = call(&router, &state, "PATCH", path, body);
            assert_eq!(r.errors(400), *expected, "{body}");
        }
        let at = state.find_endpoint("p", "p-0").unwrap();
        assert!(state.endpoint(at).enabled(), "nothing applied");
        assert_eq!(state.endpoint(at).weight(), 1.0);
        assert_eq!(call(&router, &state, "PATCH", path, "nope").status, 400);
    }

    #[test]
    fn session_persistence_rackspace_style() {
        let (router, state) = setup(None);
        let path = "/v1/load_balancers/www.example.com/session_persistence";
        let get = || {
            let r = call(&router, &state, "GET", path, "");
            assert_eq!(r.status, 200);
            r.json()
        };
        // Off; no envelope.
        assert_eq!(get(), json!({"sessionPersistence": {}}));

        let r = call(
            &router,
            &state,
            "PUT",
            path,
            r#"{"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            json!({"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}})
        );
        let conf = lb_conf(&state, "www.example.com");
        assert_eq!(
            (conf.session_affinity, conf.session_affinity_ttl),
            (SessionAffinity::Cookie, 82_800)
        );
        assert_eq!(
            get(),
            json!({"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}})
        );

        let r = call(
            &router,
            &state,
            "PUT",
            path,
            r#"{"sessionPersistence": {"persistenceType": "SOURCE_IP"}}"#,
        );
        assert_eq!(
            r.json(),
            json!({"sessionPersistence": {"persistenceType": "SOURCE_IP"}})
        );
        let conf = lb_conf(&state, "www.example.com");
        assert_eq!(
            (conf.session_affinity, conf.session_affinity_ttl),
            (SessionAffinity::SourceIp, 1800)
        );

        // Bad bodies: a Rackspace fault naming the field; nothing changes.
        for (body, message) in [
            (
                r#"{"sessionPersistence": {"persistenceType": "APP_COOKIE"}}"#,
                r#"sessionPersistence.persistenceType: must be HTTP_COOKIE or SOURCE_IP, got a string ("APP_COOKIE")"#,
            ),
            (
                r#"{"sessionPersistence": {}}"#,
                "sessionPersistence.persistenceType: required",
            ),
            (r#"{}"#, "sessionPersistence: required"),
            (
                r#"{"sessionPersistence": "HTTP_COOKIE"}"#,
                r#"sessionPersistence: expected an object, got a string ("HTTP_COOKIE")"#,
            ),
            (
                r#"{"sessionPersistence": {"persistenceType": "SOURCE_IP", "x": 1}}"#,
                "sessionPersistence.x: unknown field",
            ),
        ] {
            let r = call(&router, &state, "PUT", path, body);
            assert_eq!(r.status, 400, "{body}");
            assert_eq!(
                r.json(),
                json!({"badRequest": {"code": 400, "message": message}}),
                "{body}"
            );
        }
        assert_eq!(
            lb_conf(&state, "www.example.com").session_affinity,
            SessionAffinity::SourceIp
        );

        // DELETE turns it off, a second DELETE is 422.
        let r = call(&router, &state, "DELETE", path, "");
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"sessionPersistence": {}}))
        );
        let conf = lb_conf(&state, "www.example.com");
        assert_eq!(
            (conf.session_affinity, conf.session_affinity_ttl),
            (SessionAffinity::None, 0)
        );
        let r = call(&router, &state, "DELETE", path, "");
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json(),
            json!({"unprocessableEntity": {"code": 422, "message": "session persistence is already disabled on load balancer \"www.example.com\""}})
        );

        // Types without a Rackspace name say which they are.
        call(
            &router,
            &state,
            "PATCH",
            "/v1/load_balancers/www.example.com",
            r#"{"session_affinity": "ip_cookie"}"#,
        )
        .result();
        assert_eq!(
            get(),
            json!({"sessionPersistence": {}, "session_affinity": "ip_cookie"})
        );

        let r = call(
            &router,
            &state,
            "GET",
            "/v1/load_balancers/nope/session_persistence",
            "",
        );
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            json!({"itemNotFound": {"code": 404, "message": "no load balancer named \"nope\""}})
        );
    }

    #[test]
    fn changes_are_described_for_the_log() {
        let a = json!({"x": "cookie", "n": 1, "o": {"k": [1]}, "same": true});
        let b = json!({"x": "source_ip", "n": 1, "o": {"k": [1, 2]}, "same": true});
        assert_eq!(
            diff(&a, &b, ""),
            ["o.k [1] -> [1,2]", "x cookie -> source_ip"]
        );
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(
            split_path("/v1/load_balancers/%2A/"),
            Some(vec!["v1".into(), "load_balancers".into(), "*".into()])
        );
        assert_eq!(split_path("/a%2"), Some(vec!["a%2".into()]));
        assert_eq!(split_path("/%C3%A9"), Some(vec!["é".into()]));
        assert_eq!(split_path("/%ff"), None);
    }
}
