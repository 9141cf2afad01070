//! `/v1/load_balancers` and `/v1/load_balancers/{name}`: the effective
//! settings in Cloudflare's field names (the file's keys and canonical
//! spellings, from [`crate::config::load_balancer_to_value`]), and `PATCH`,
//! read as a typed [`LbPatch`] (400 naming each field it cannot read) and
//! handed to the owner of changes as one [`Change::PatchLoadBalancer`].

use std::sync::Arc;

use serde_json::Value as Json;

use super::call::Call;
use super::response::{allow, json_object, AdminResponse, Answer, ApiError};
use crate::changes::records::lb_json;
use crate::changes::{Change, LbPatch};
use crate::config;
use crate::state::{LbState, NotFound, State};

/// A load balancer as the API shows it: its name and every key of the
/// file, `fallback_pool` `null` when there is none.
pub fn view(lb: &config::LoadBalancer) -> Json {
    let mut value = lb_json(lb);
    if let Json::Object(map) = &mut value {
        map.insert("name".into(), Json::from(lb.name.as_str()));
        map.entry("fallback_pool").or_insert(Json::Null);
    }
    value
}

/// `GET /v1/load_balancers`: every load balancer, by name.
pub fn list(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let table = call.state().load_balancers();
    let mut all: Vec<&Arc<LbState>> = table.all().collect();
    all.sort_by(|a, b| a.conf.name.cmp(&b.conf.name));
    let views: Vec<Json> = all.into_iter().map(|lb| view(&lb.conf)).collect();
    Ok(AdminResponse::ok(&views))
}

/// `GET` or `PATCH /v1/load_balancers/{name}` (`PUT` and `DELETE`:
/// [`super::objects::write`]).
pub fn one(call: &Call<'_>, name: &str) -> Answer {
    allow(call.method, &["GET", "PATCH", "PUT", "DELETE"])?;
    let current = find(call.state(), name)?;
    if call.method == "PATCH" {
        let fields =
            LbPatch::from_json(&json_object(call.body)?).map_err(|e| ApiError::bad_request(e.0))?;
        call.apply(&[Change::PatchLoadBalancer {
            load_balancer: current.conf.name.clone(),
            fields,
        }])?;
    }
    Ok(AdminResponse::ok(&view(&find(call.state(), name)?.conf)))
}

/// A load balancer by its name (host names case-insensitively; `*`).
pub fn find(state: &State, name: &str) -> Result<Arc<LbState>, ApiError> {
    state
        .load_balancers()
        .named(&name.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| NotFound::LoadBalancer(name.to_string()).into())
}
