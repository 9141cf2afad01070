//! Cloudflare's v4 Load Balancing API under `/client/v4` (docs/cloudflare-api.md):
//! monitors and pools under `/accounts/{account_id}/load_balancers/`, load
//! balancers under `/zones/{zone_id}/load_balancers`, in Cloudflare's
//! envelope `{success, errors: [{code, message}], messages, result,
//! result_info}`. `account_id` and `zone_id` are any identifier: one Tether
//! is one account and one zone. Objects are converted by
//! [`crate::cloudflare`]; changes go to the owner of changes as typed
//! [`Change`]s.

use serde_json::{json, Map, Value as Json};

use super::call::Call;
use super::response::{json_object, AdminResponse};
use crate::changes::patch::{AttributesPatch, LbPatch, Seconds};
use crate::changes::{Change, Changes};
use crate::cloudflare::{export, import, object_id, tethers_own, types, Notes, ObjectKind};
use crate::config;
use crate::state::State;

/// A refusal in Cloudflare's shape: the HTTP status, one message per
/// problem, each with Cloudflare's `code` ([`CfError::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfError {
    pub status: u16,
    pub messages: Vec<String>,
    /// Cloudflare's code when it is not the one of the status
    /// ([`code_of_status`]).
    pub code: Option<u32>,
}

/// Cloudflare's error codes as its API answers them (docs/cloudflare-api.md,
/// "Envelope, IDs and errors").
pub mod codes {
    /// `400`: a body that does not validate ("...: validation failed").
    pub const VALIDATION: u32 = 1002;
    /// `409` on `POST`: the name is taken ("value not unique").
    pub const NOT_UNIQUE: u32 = 1003;
    /// `404`: a path under `/client/v4` no route takes ("No route for that URI").
    pub const NO_ROUTE: u32 = 7000;
    /// `404`: no object has the path's ID ("Could not route to ..., perhaps
    /// your object identifier is invalid?").
    pub const BAD_IDENTIFIER: u32 = 7003;
    /// `401`, `403`: no or a wrong token ("Authentication error").
    pub const AUTHENTICATION: u32 = 10000;
}

/// Cloudflare's code for an error of HTTP status `status`: its own where
/// one is known ([`codes`]), else the status itself.
pub fn code_of_status(status: u16) -> u32 {
    match status {
        400 => codes::VALIDATION,
        401 | 403 => codes::AUTHENTICATION,
        404 => codes::BAD_IDENTIFIER,
        other => u32::from(other),
    }
}

impl CfError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        CfError {
            status,
            messages: vec![message.into()],
            code: None,
        }
    }

    fn with_code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    fn bad_request(messages: Vec<String>) -> Self {
        CfError {
            status: 400,
            messages,
            code: None,
        }
    }

    /// Its Cloudflare `code`.
    pub fn code(&self) -> u32 {
        self.code.unwrap_or_else(|| code_of_status(self.status))
    }
}

impl From<super::response::ApiError> for CfError {
    fn from(e: super::response::ApiError) -> Self {
        CfError {
            status: e.status,
            messages: e.messages,
            code: None,
        }
    }
}

impl From<crate::changes::ChangeError> for CfError {
    fn from(e: crate::changes::ChangeError) -> Self {
        super::response::ApiError::from(e).into()
    }
}

/// A `result` and, for lists, its `result_info`.
type Reply = Result<(Json, Option<Json>), CfError>;

/// The answer in Cloudflare's envelope.
pub fn envelope(status: u16, reply: Reply, messages: &[String]) -> AdminResponse {
    match reply {
        Ok((result, info)) => {
            let mut body = json!({
                "success": true,
                "errors": [],
                "messages": messages.iter().map(|m| json!({"code": 0, "message": m})).collect::<Vec<_>>(),
                "result": result,
            });
            if let Some(info) = info {
                body["result_info"] = info;
            }
            AdminResponse::json(status, &body)
        }
        Err(e) => AdminResponse::json(
            e.status,
            &json!({
                "success": false,
                "errors": e.messages.iter().map(|m| json!({"code": e.code(), "message": m})).collect::<Vec<_>>(),
                "messages": [],
                "result": null,
            }),
        ),
    }
}

/// A refusal made before the route is known (`401`, `403`, `413`), in
/// Cloudflare's error shape when `path` is under `/client/v4`; any other
/// answer as it is.
pub fn reshape(path: &str, answer: AdminResponse) -> AdminResponse {
    if !path.starts_with("/client/v4/") {
        return answer;
    }
    let messages: Vec<String> = serde_json::from_slice::<Json>(&answer.body)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    let status = answer.status;
    let error = CfError {
        status,
        messages,
        code: None,
    };
    let mut reshaped = envelope(200, Err(error), &[]);
    reshaped.headers = answer.headers;
    reshaped
}

fn list_info(n: usize) -> Json {
    json!({"page": 1, "per_page": n.max(1), "count": n, "total_count": n, "total_pages": 1})
}

/// `/client/v4/...`: `segs` are the segments after `client/v4`.
pub fn handle(call: &Call<'_>, changes: &Changes, segs: &[&str]) -> AdminResponse {
    let mut messages = Vec::new();
    let reply = route(&Api { call, changes }, segs, &mut messages);
    envelope(200, reply, &messages)
}

/// A call and the owner of changes (for the state after a change).
struct Api<'a> {
    call: &'a Call<'a>,
    changes: &'a Changes,
}

impl<'a> std::ops::Deref for Api<'a> {
    type Target = Call<'a>;
    fn deref(&self) -> &Call<'a> {
        self.call
    }
}

fn allow(call: &Call<'_>, methods: &[&str]) -> Result<(), CfError> {
    if methods.contains(&call.method) {
        Ok(())
    } else {
        Err(CfError::new(
            405,
            format!(
                "method {} is not allowed here (allowed: {})",
                call.method,
                methods.join(", ")
            ),
        ))
    }
}

fn route(call: &Api<'_>, segs: &[&str], messages: &mut Vec<String>) -> Reply {
    match segs {
        ["accounts", _, "load_balancers", "monitors"] => {
            allow(call, &["GET", "POST"])?;
            match call.method {
                "GET" => Ok(list(stamped(
                    call,
                    ObjectKind::Monitor,
                    monitors(call.state()),
                ))),
                _ => create(call, ObjectKind::Monitor, messages),
            }
        }
        ["accounts", _, "load_balancers", "monitors", id] => {
            allow(call, &["GET", "PUT", "PATCH", "DELETE"])?;
            one(call, ObjectKind::Monitor, id, messages)
        }
        ["accounts", _, "load_balancers", "pools"] => {
            allow(call, &["GET", "POST"])?;
            match call.method {
                "GET" => Ok(list(stamped(call, ObjectKind::Pool, pools(call.state())))),
                _ => create(call, ObjectKind::Pool, messages),
            }
        }
        ["accounts", _, "load_balancers", "pools", id] => {
            allow(call, &["GET", "PUT", "PATCH", "DELETE"])?;
            one(call, ObjectKind::Pool, id, messages)
        }
        ["accounts", _, "load_balancers", "pools", id, "health"] => {
            allow(call, &["GET"])?;
            health(call.state(), id)
        }
        ["zones", _, "load_balancers"] => {
            allow(call, &["GET", "POST"])?;
            match call.method {
                "GET" => Ok(list(stamped(
                    call,
                    ObjectKind::LoadBalancer,
                    load_balancers(call.state()),
                ))),
                _ => create(call, ObjectKind::LoadBalancer, messages),
            }
        }
        ["zones", _, "load_balancers", id] => {
            allow(call, &["GET", "PUT", "PATCH", "DELETE"])?;
            one(call, ObjectKind::LoadBalancer, id, messages)
        }
        _ => Err(
            CfError::new(404, format!("no route for /client/v4/{}", segs.join("/")))
                .with_code(codes::NO_ROUTE),
        ),
    }
}

fn list(items: Vec<Json>) -> (Json, Option<Json>) {
    let n = items.len();
    (Json::Array(items), Some(list_info(n)))
}

/// The ID of `kind`'s object `name`.
fn id_of(kind: ObjectKind, name: &str) -> String {
    object_id(kind, name)
}

fn to_json(v: &impl serde::Serialize) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Every monitor the pools may name, as Cloudflare's.
fn monitors(state: &State) -> Vec<Json> {
    state
        .monitors
        .values()
        .map(|m| to_json(&export::monitor(m, &id_of)))
        .collect()
}

/// A pool's configuration as in force now ([`crate::state::PoolState::conf_in_force`]).
fn live_pool(state: &State, index: usize) -> config::Pool {
    state.pools[index].conf_in_force()
}

fn pools(state: &State) -> Vec<Json> {
    let mut all: Vec<config::Pool> = (0..state.pools.len())
        .map(|i| live_pool(state, i))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.iter()
        .map(|p| to_json(&export::pool(p, &id_of)))
        .collect()
}

fn load_balancers(state: &State) -> Vec<Json> {
    let table = state.load_balancers();
    let mut all: Vec<&config::LoadBalancer> = table.all().map(|lb| &lb.conf).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.iter()
        .map(|lb| to_json(&export::load_balancer(lb, &id_of)))
        .collect()
}

/// Objects shown with `created_on` and `modified_on` (RFC 3339) when they
/// were created or changed at run time.
fn stamped(call: &Api<'_>, kind: ObjectKind, mut objects: Vec<Json>) -> Vec<Json> {
    let views: std::collections::HashMap<String, crate::changes::ObjectView> = call
        .changes
        .objects(kind)
        .into_iter()
        .map(|v| (v.id.clone(), v))
        .collect();
    for o in &mut objects {
        let view = o["id"].as_str().and_then(|id| views.get(id));
        if let Some(view) = view {
            stamp(o, view);
        }
    }
    objects
}

fn stamp_one(call: &Api<'_>, kind: ObjectKind, mut object: Json) -> Json {
    let id = object["id"].as_str().unwrap_or_default().to_string();
    if let Some(view) = call.changes.object_by_id(kind, &id) {
        stamp(&mut object, &view);
    }
    object
}

fn stamp(object: &mut Json, view: &crate::changes::ObjectView) {
    use super::pools::rfc3339_ms;
    if let Some(map) = object.as_object_mut() {
        if let Some(ms) = view.created_on_unix_ms {
            map.insert("created_on".into(), rfc3339_ms(ms).into());
        }
        if let Some(ms) = view.modified_on_unix_ms {
            map.insert("modified_on".into(), rfc3339_ms(ms).into());
        }
    }
}

/// The name of `kind`'s object with ID `id`, if there is one.
fn name_of(state: &State, kind: ObjectKind, id: &str) -> Option<String> {
    let id = id.to_ascii_lowercase();
    match kind {
        ObjectKind::Monitor => state
            .monitors
            .keys()
            .find(|n| id_of(kind, n) == id)
            .cloned(),
        ObjectKind::Pool => state
            .pools
            .iter()
            .map(|p| p.name())
            .find(|n| id_of(kind, n) == id)
            .map(str::to_string),
        ObjectKind::LoadBalancer => state
            .load_balancers()
            .all()
            .map(|lb| lb.conf.name.clone())
            .find(|n| id_of(kind, n) == id),
    }
}

fn not_found(kind: ObjectKind, id: &str) -> CfError {
    CfError::new(404, format!("no {} has ID {id:?}", kind.as_str()))
}

/// The object's current Cloudflare form.
fn current(state: &State, kind: ObjectKind, name: &str) -> Option<Json> {
    match kind {
        ObjectKind::Monitor => state
            .monitors
            .get(name)
            .map(|m| to_json(&export::monitor(m, &id_of))),
        ObjectKind::Pool => state
            .pool_index(name)
            .map(|i| to_json(&export::pool(&live_pool(state, i), &id_of))),
        ObjectKind::LoadBalancer => state
            .load_balancers()
            .named(name)
            .map(|lb| to_json(&export::load_balancer(&lb.conf, &id_of))),
    }
}

fn one(call: &Api<'_>, kind: ObjectKind, id: &str, messages: &mut Vec<String>) -> Reply {
    let state = call.state();
    let name = name_of(state, kind, id).ok_or_else(|| not_found(kind, id))?;
    let before = current(state, kind, &name).ok_or_else(|| not_found(kind, id))?;
    match call.method {
        "GET" => Ok((stamp_one(call, kind, before), None)),
        "DELETE" => delete(call, kind, &name),
        method => {
            let body = json_object(call.body)?;
            let merged = match method {
                // PATCH: the fields given replace the object's own.
                "PATCH" => {
                    let mut m = before.as_object().cloned().unwrap_or_default();
                    m.extend(body);
                    m
                }
                // PUT: the object as given.
                _ => body,
            };
            replace(call, kind, &name, merged, messages)?;
            let after = current(&call.changes.state(), kind, &name).unwrap_or(Json::Null);
            Ok((stamp_one(call, kind, after), None))
        }
    }
}

/// Reads a Cloudflare object (a body, or an object merged with a `PATCH`)
/// into the configuration's; the API's `400` for a value Tether cannot
/// honour, naming its field. `name_hint`: the name the object keeps.
fn read(
    state: &State,
    kind: ObjectKind,
    body: Map<String, Json>,
    name_hint: Option<&str>,
    notes: &mut Notes,
) -> Result<Object, CfError> {
    let names = |k: ObjectKind, id: &str| name_of(state, k, id);
    let object = match kind {
        ObjectKind::Monitor => {
            let m: types::Monitor = parse(kind, body)?;
            let name = name_hint.map_or_else(|| import::monitor_name(&m), str::to_string);
            Object::Monitor(import::monitor(&m, &name, "monitor", notes))
        }
        ObjectKind::Pool => {
            let p: types::Pool = parse(kind, body)?;
            match import::pool(&p, "pool", &names, notes) {
                Some(p) => Object::Pool(p),
                None => return Err(CfError::bad_request(notes.refused.clone())),
            }
        }
        ObjectKind::LoadBalancer => {
            let lb: types::LoadBalancer = parse(kind, body)?;
            match import::load_balancer(&lb, "load_balancer", &names, notes) {
                Some(lb) => Object::LoadBalancer(lb),
                None => return Err(CfError::bad_request(notes.refused.clone())),
            }
        }
    };
    if !notes.refused.is_empty() {
        return Err(CfError::bad_request(notes.refused.clone()));
    }
    Ok(object)
}

/// A Cloudflare object of `kind` read from `body`; a value of the wrong type
/// is a `400` naming its field path (`pool.origins[1].weight: invalid type:
/// string "x", expected f64`).
fn parse<T: serde::de::DeserializeOwned>(
    kind: ObjectKind,
    body: Map<String, Json>,
) -> Result<T, CfError> {
    serde_path_to_error::deserialize(Json::Object(body)).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            kind.as_str().to_string()
        } else {
            format!("{}.{path}", kind.as_str())
        };
        CfError::new(400, format!("{at}: {}", e.inner()))
    })
}

impl Object {
    fn name(&self) -> &str {
        match self {
            Object::Monitor(m) => &m.name,
            Object::Pool(p) => &p.name,
            Object::LoadBalancer(lb) => &lb.name,
        }
    }

    /// Its entry of `tether:` in the file's form (the name is the key).
    fn value(&self) -> Json {
        match self {
            Object::Monitor(m) => to_json(m),
            Object::Pool(p) => to_json(p),
            Object::LoadBalancer(lb) => to_json(lb),
        }
    }

    /// Creates or replaces it through the owner of changes.
    fn put(&self, kind: ObjectKind) -> Change {
        Change::PutObject {
            kind,
            name: self.name().to_string(),
            value: self.value(),
        }
    }
}

/// A configuration object read from Cloudflare's.
#[derive(Debug, Clone, PartialEq)]
enum Object {
    Monitor(config::Monitor),
    Pool(config::Pool),
    LoadBalancer(config::LoadBalancer),
}

/// `PUT` / `PATCH`: the object becomes `body`.
fn replace(
    call: &Api<'_>,
    kind: ObjectKind,
    name: &str,
    body: Map<String, Json>,
    messages: &mut Vec<String>,
) -> Result<(), CfError> {
    let state = call.state();
    let mut body = body;
    let tls = state
        .pool_index(name)
        .is_some_and(|i| state.pools[i].conf.tls.is_some());
    if kind == ObjectKind::Pool && tls {
        default_port(&mut body, HTTPS_PORT);
    }
    let mut notes = Notes::default();
    let object = read(state, kind, body, Some(name), &mut notes)?;
    let object = &keep_tethers_own(state, object);
    messages.extend(
        notes
            .dropped
            .iter()
            .map(|d| format!("accepted, not honoured: {d}")),
    );
    let batch = match &object {
        Object::Pool(p) => {
            if p.name != name {
                return Err(CfError::new(
                    400,
                    format!("pool.name: a pool cannot be renamed (it is {name:?})"),
                ));
            }
            let i = state
                .pool_index(name)
                .ok_or_else(|| CfError::new(404, format!("no pool {name:?}")))?;
            // Origins' enabled and weight as today's changes (a disable
            // drains); anything else replaces the pool.
            pool_changes(&live_pool(state, i), p).unwrap_or_else(|_| vec![object.put(kind)])
        }
        Object::LoadBalancer(lb) => {
            if lb.name != name {
                return Err(CfError::new(
                    400,
                    format!(
                        "load_balancer.name: a load balancer cannot be renamed (it is {name:?})"
                    ),
                ));
            }
            let table = state.load_balancers();
            let old = table
                .named(name)
                .ok_or_else(|| CfError::new(404, format!("no load balancer {name:?}")))?;
            lb_changes(&old.conf, lb).unwrap_or_else(|_| vec![object.put(kind)])
        }
        Object::Monitor(m) => {
            if state.monitors.get(name) == Some(m) {
                Vec::new()
            } else {
                vec![object.put(kind)]
            }
        }
    };
    if !batch.is_empty() {
        call.apply(&batch)?;
    }
    Ok(())
}

/// `new` with the keys Tether has and Cloudflare's object does not
/// ([`tethers_own`]) taken from the object it replaces: a Cloudflare client
/// cannot set them, so a replace must not drop them.
fn keep_tethers_own(state: &State, new: Object) -> Object {
    match new {
        Object::Pool(mut p) => {
            if let Some(i) = state.pool_index(&p.name) {
                tethers_own::keep_pool(&state.pools[i].conf, &mut p);
            }
            Object::Pool(p)
        }
        Object::Monitor(mut m) => {
            if let Some(old) = state.monitors.get(&m.name) {
                tethers_own::keep_monitor(old, &mut m);
            }
            Object::Monitor(m)
        }
        Object::LoadBalancer(mut lb) => {
            if let Some(old) = state.load_balancers().named(&lb.name) {
                tethers_own::keep_load_balancer(&old.conf, &mut lb);
            }
            Object::LoadBalancer(lb)
        }
    }
}

/// The default port of a pool that speaks TLS to its origins (`tls`).
const HTTPS_PORT: u16 = 443;

/// Each origin of Cloudflare pool `body` whose `port` is absent or `0` ("the
/// protocol's default port") given `port`. The import takes 80, plain
/// HTTP's, which is right for a pool without `tls`; a pool with `tls` (Tether's
/// own key, kept by a replace) speaks HTTPS to its origins: 443.
fn default_port(body: &mut Map<String, Json>, port: u16) {
    let Some(Json::Array(origins)) = body.get_mut("origins") else {
        return;
    };
    for o in origins.iter_mut().filter_map(Json::as_object_mut) {
        if matches!(o.get("port"), None | Some(Json::Null)) || o.get("port") == Some(&json!(0)) {
            o.insert("port".into(), json!(port));
        }
    }
}

/// The run-time changes that turn pool `old` into `new`: endpoints'
/// `enabled` and `weight`. Any other difference is refused, naming it.
fn pool_changes(old: &config::Pool, new: &config::Pool) -> Result<Vec<Change>, CfError> {
    let mut batch = Vec::new();
    let same_endpoints = old.endpoints.len() == new.endpoints.len()
        && old
            .endpoints
            .iter()
            .zip(&new.endpoints)
            .all(|(a, b)| a.name == b.name && a.address == b.address && a.host == b.host);
    if !same_endpoints {
        return Err(CfError::new(
            409,
            format!(
                "pool {:?}: origins can only change their enabled and weight at run time",
                old.name
            ),
        ));
    }
    for (a, b) in old.endpoints.iter().zip(&new.endpoints) {
        if a.weight != b.weight {
            if !(0.0..=1.0).contains(&b.weight) {
                return Err(CfError::new(
                    400,
                    format!(
                        "pool.origins.{}.weight: must be between 0 and 1, got {}",
                        b.name, b.weight
                    ),
                ));
            }
            batch.push(Change::SetEndpointWeight {
                pool: old.name.clone(),
                endpoint: b.name.clone(),
                weight: b.weight,
            });
        }
        if a.enabled != b.enabled {
            batch.push(Change::SetEndpointEnabled {
                pool: old.name.clone(),
                endpoint: b.name.clone(),
                enabled: b.enabled,
                drain_started_unix_ms: None,
            });
        }
    }
    let mut rest = new.clone();
    rest.endpoints = old.endpoints.clone();
    tethers_own::keep_pool(old, &mut rest);
    if rest != *old {
        return Err(CfError::new(
            409,
            format!(
                "pool {:?}: only its origins' enabled and weight can change at run time",
                old.name
            ),
        ));
    }
    Ok(batch)
}

/// The run-time patch that turns load balancer `old` into `new`.
fn lb_changes(
    old: &config::LoadBalancer,
    new: &config::LoadBalancer,
) -> Result<Vec<Change>, CfError> {
    let mut patch = LbPatch::default();
    if old.enabled != new.enabled {
        patch.enabled = Some(new.enabled);
    }
    if old.default_pools != new.default_pools {
        patch.default_pools = Some(new.default_pools.clone());
    }
    if old.fallback_pool != new.fallback_pool {
        patch.fallback_pool = Some(new.fallback_pool.clone());
    }
    if old.steering_policy != new.steering_policy {
        patch.steering_policy = Some(new.steering_policy);
    }
    if old.session_affinity != new.session_affinity {
        patch.session_affinity = Some(new.session_affinity);
    }
    if old.session_affinity_ttl != new.session_affinity_ttl && !new.session_affinity_ttl.is_zero() {
        patch.session_affinity_ttl = Some(Seconds::new(new.session_affinity_ttl.as_secs()));
    }
    let (a, b) = (
        &old.session_affinity_attributes,
        &new.session_affinity_attributes,
    );
    let attrs = AttributesPatch {
        samesite: (a.samesite != b.samesite).then_some(b.samesite),
        secure: (a.secure != b.secure).then_some(b.secure),
        drain_duration: (a.drain_duration != b.drain_duration)
            .then(|| Seconds::new(b.drain_duration.as_secs())),
        zero_downtime_failover: (a.zero_downtime_failover != b.zero_downtime_failover)
            .then_some(b.zero_downtime_failover),
        headers: (a.headers != b.headers).then(|| b.headers.clone()),
        require_all_headers: (a.require_all_headers != b.require_all_headers)
            .then_some(b.require_all_headers),
    };
    patch.session_affinity_attributes = attrs;
    let mut rest = new.clone();
    rest.enabled = old.enabled;
    rest.default_pools = old.default_pools.clone();
    rest.fallback_pool = old.fallback_pool.clone();
    rest.steering_policy = old.steering_policy;
    rest.session_affinity = old.session_affinity;
    rest.session_affinity_ttl = old.session_affinity_ttl;
    rest.session_affinity_attributes = old.session_affinity_attributes.clone();
    tethers_own::keep_load_balancer(old, &mut rest);
    if rest != *old {
        return Err(CfError::new(409, format!("load balancer {:?}: only enabled, default_pools, fallback_pool, steering_policy and session affinity can change at run time", old.name)));
    }
    if patch == LbPatch::default() {
        return Ok(Vec::new());
    }
    Ok(vec![Change::PatchLoadBalancer {
        load_balancer: old.name.clone(),
        fields: patch,
    }])
}

/// `POST`: a new object, in force at once. A monitor (which has no name in
/// Cloudflare's API) is named by its `description` when that is a valid
/// name not taken, else `monitor-<n>`.
fn create(call: &Api<'_>, kind: ObjectKind, messages: &mut Vec<String>) -> Reply {
    let state = call.state();
    let body = json_object(call.body)?;
    let name_hint = match kind {
        ObjectKind::Monitor => Some(new_monitor_name(state, body.get("description"))),
        _ => None,
    };
    let mut notes = Notes::default();
    let object = read(state, kind, body, name_hint.as_deref(), &mut notes)?;
    messages.extend(
        notes
            .dropped
            .iter()
            .map(|d| format!("accepted, not honoured: {d}")),
    );
    let name = object.name().to_string();
    if current(state, kind, &name).is_some() {
        return Err(CfError::new(
            409,
            format!(
                "{}.name: a {} named {name:?} already exists (ID {}); PUT or PATCH it instead",
                kind.as_str(),
                kind.as_str(),
                id_of(kind, &name)
            ),
        )
        .with_code(codes::NOT_UNIQUE));
    }
    call.apply(&[object.put(kind)])?;
    let after = current(&call.changes.state(), kind, &name).ok_or_else(|| {
        CfError::new(
            500,
            format!("{} {name:?} was created but is not in force", kind.as_str()),
        )
    })?;
    Ok((stamp_one(call, kind, after), None))
}

/// A name for a new monitor: its description when that is a free, valid
/// name, else the first free `monitor-<n>`.
fn new_monitor_name(state: &State, description: Option<&Json>) -> String {
    if let Some(Json::String(d)) = description {
        if crate::config::read::name_ok(d) && !state.monitors.contains_key(d) {
            return d.clone();
        }
    }
    (1..)
        .map(|n| format!("monitor-{n}"))
        .find(|n| !state.monitors.contains_key(n))
        .unwrap_or_default()
}

/// `DELETE`: refused (409) for an object the file defines or one still in use.
fn delete(call: &Api<'_>, kind: ObjectKind, name: &str) -> Reply {
    call.apply(&[Change::DeleteObject {
        kind,
        name: name.to_string(),
    }])?;
    Ok((json!({"id": id_of(kind, name)}), None))
}

/// `GET .../pools/{pool_id}/health`: the pool's health as seen from this
/// Tether (one "point of presence"), each origin's last check.
fn health(state: &State, id: &str) -> Reply {
    let name =
        name_of(state, ObjectKind::Pool, id).ok_or_else(|| not_found(ObjectKind::Pool, id))?;
    let index = state
        .pool_index(&name)
        .ok_or_else(|| not_found(ObjectKind::Pool, id))?;
    let p = &state.pools[index];
    let healthy = crate::route::select::Selector(state).pool_is_healthy(index);
    let origins: Vec<Json> = p
        .endpoints
        .iter()
        .map(|e| {
            let check = e.last_check();
            json!({"ip": {
                "healthy": e.healthy(),
                "failure_reason": check.as_ref().and_then(|c| c.failure.clone()).unwrap_or_default(),
                "rtt": e.rtt().map(|d| format!("{}ms", d.as_millis())).unwrap_or_default(),
                "response_code": Json::Null,
            }})
        })
        .collect();
    Ok((
        json!({"pool_id": id_of(ObjectKind::Pool, &name), "pop_health": {"healthy": healthy, "origins": origins}}),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let yaml = "tether:\n  listeners: [{address: 127.0.0.1:0}]\n  load_balancers:\n    www.example.com: {default_pools: [p], always_use_https: true}\n  pools:\n    p:\n      slow_start: 30\n      outlier_detection: {consecutive_5xx: 2}\n      endpoints:\n      - {name: a, address: 127.0.0.1:1}\n      - {name: b, address: 127.0.0.1:2}\n";
        let config = crate::config::load_str(yaml).expect("config").tether;
        State::new(&config, crate::affinity::cookie::CookieKeys::random())
    }

    #[test]
    fn a_replace_keeps_what_cloudflare_cannot_say() {
        let state = state();
        let bare = config::Pool {
            name: "p".into(),
            endpoints: vec![config::Endpoint::at("a", "127.0.0.1:1")],
            ..Default::default()
        };
        let Object::Pool(kept) = keep_tethers_own(&state, Object::Pool(bare)) else {
            panic!("not a pool");
        };
        assert_eq!(kept.slow_start, std::time::Duration::from_secs(30));
        assert_eq!(kept.outlier_detection.map(|o| o.consecutive_5xx), Some(2));
        let lb = config::LoadBalancer {
            name: "www.example.com".into(),
            ..Default::default()
        };
        let Object::LoadBalancer(kept) = keep_tethers_own(&state, Object::LoadBalancer(lb)) else {
            panic!("not a load balancer");
        };
        assert!(kept.always_use_https);
    }

    #[test]
    fn weights_and_enabled_are_todays_changes_anything_else_a_replace() {
        let state = state();
        let old = live_pool(&state, 0);
        let mut new = old.clone();
        new.endpoints[0].weight = 0.5;
        new.endpoints[1].enabled = false;
        let batch = pool_changes(&old, &new).expect("changes");
        assert_eq!(batch.len(), 2, "{batch:?}");
        assert!(
            matches!(&batch[0], Change::SetEndpointWeight { endpoint, weight, .. } if endpoint == "a" && *weight == 0.5)
        );
        assert!(
            matches!(&batch[1], Change::SetEndpointEnabled { endpoint, enabled: false, .. } if endpoint == "b")
        );
        new.minimum_origins = 2;
        assert_eq!(pool_changes(&old, &new).unwrap_err().status, 409);
        let mut added = old.clone();
        added
            .endpoints
            .push(config::Endpoint::at("c", "127.0.0.1:3"));
        assert!(pool_changes(&old, &added).is_err());

        let table = state.load_balancers();
        let lb = &table.named("www.example.com").expect("lb").conf;
        let mut new = lb.clone();
        new.session_affinity = config::SessionAffinity::Cookie;
        let batch = lb_changes(lb, &new).expect("patch");
        assert!(
            matches!(&batch[..], [Change::PatchLoadBalancer { fields, .. }] if fields.session_affinity == Some(config::SessionAffinity::Cookie))
        );
        assert!(lb_changes(lb, &lb.clone()).expect("nothing").is_empty());
        new.adaptive_routing.failover_across_pools = true;
        assert_eq!(lb_changes(lb, &new).unwrap_err().status, 409);
    }

    #[test]
    fn a_body_of_the_wrong_type_names_the_field_path() {
        let body = json!({"name": "p", "origins": [{"name": "a", "address": "x"}, {"name": "b", "address": "y", "weight": "heavy"}]});
        let Json::Object(body) = body else {
            panic!("an object")
        };
        let e = parse::<types::Pool>(ObjectKind::Pool, body).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.messages[0].starts_with("pool.origins[1].weight: invalid type: string \"heavy\""),
            "{e:?}"
        );
        assert_eq!(e.code(), codes::VALIDATION);
        assert_eq!(code_of_status(404), codes::BAD_IDENTIFIER);
        assert_eq!(code_of_status(405), 405);
    }

    #[test]
    fn a_tls_pools_default_port_is_443() {
        let mut body = json!({"origins": [{"name": "a"}, {"name": "b", "port": 0}, {"name": "c", "port": 8443}, "x"]});
        let Json::Object(map) = &mut body else {
            panic!("an object")
        };
        default_port(map, HTTPS_PORT);
        let ports: Vec<&Json> = body["origins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["port"])
            .collect();
        assert_eq!(ports, [&json!(443), &json!(443), &json!(8443), &Json::Null]);
    }

    #[test]
    fn refusals_before_the_route_take_cloudflares_shape_under_client_v4() {
        let refusal = super::super::response::ApiError::new(401, "wrong token")
            .envelope()
            .with_header("www-authenticate", "Bearer".into());
        let r = reshape("/client/v4/zones/z/load_balancers", refusal.clone());
        assert_eq!(r.status, 401);
        assert_eq!(r.headers, refusal.headers);
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["errors"],
            json!([{"code": 10000, "message": "wrong token"}])
        );
        assert_eq!(v["messages"], json!([]));
        assert_eq!(reshape("/v1/pools", refusal.clone()), refusal);
    }

    #[test]
    fn errors_have_cloudflares_shape() {
        let r = envelope(200, Err(CfError::new(400, "lb.steering_policy: no")), &[]);
        assert_eq!(r.status, 400);
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["errors"][0]["code"], 1002, "Cloudflare's validation code");
        assert_eq!(v["errors"][0]["message"], "lb.steering_policy: no");
        assert_eq!(v["messages"], json!([]));
        assert!(v["result"].is_null());
    }
}
