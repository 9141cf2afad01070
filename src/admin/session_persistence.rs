//! `/v1/load_balancers/{name}/session_persistence`, Rackspace's resource:
//! `HTTP_COOKIE` is `cookie`, `SOURCE_IP` is `source_ip`; `DELETE` turns
//! affinity off and answers `422` when it is already off. Errors are
//! Rackspace faults, not Cloudflare's envelope (see [`super::router`]).

use serde_json::{json, Map, Value as Json};

use super::call::Call;
use super::load_balancers::find;
use super::response::{allow, describe, json_object, AdminResponse, Answer, ApiError};
use crate::changes::{Change, Persistence};
use crate::config::{SessionAffinity, Spelled};

/// `GET`, `PUT` or `DELETE`.
pub fn handle(call: &Call<'_>, name: &str) -> Answer {
    allow(call.method, &["GET", "PUT", "DELETE"])?;
    let lb = find(call.state(), name)?;
    let persistence = match call.method {
        "GET" => None,
        "PUT" => Some(persistence_type(&json_object(call.body)?)?),
        _ => Some(Persistence::Off),
    };
    if let Some(persistence) = persistence {
        call.apply(&[Change::SetSessionPersistence {
            load_balancer: lb.conf.name.clone(),
            persistence,
        }])?;
    }
    let affinity = find(call.state(), name)?.conf.session_affinity;
    Ok(AdminResponse::json(200, &view(affinity)))
}

/// The resource for a load balancer's affinity; the types without a
/// Rackspace equivalent answer an empty `sessionPersistence` and name
/// themselves in `session_affinity`.
pub fn view(affinity: SessionAffinity) -> Json {
    match affinity {
        SessionAffinity::Cookie => {
            json!({"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}})
        }
        SessionAffinity::SourceIp => {
            json!({"sessionPersistence": {"persistenceType": "SOURCE_IP"}})
        }
        SessionAffinity::None => json!({"sessionPersistence": {}}),
        other @ (SessionAffinity::IpCookie | SessionAffinity::Header) => {
            json!({"sessionPersistence": {}, "session_affinity": other.name()})
        }
    }
}

/// `HTTP_COOKIE` / `SOURCE_IP` out of `{"sessionPersistence": {"persistenceType": ...}}`.
fn persistence_type(body: &Map<String, Json>) -> Result<Persistence, ApiError> {
    const FIELD: &str = "sessionPersistence.persistenceType";
    let mut problems: Vec<String> = body
        .keys()
        .filter(|k| *k != "sessionPersistence")
        .map(|k| format!("{k}: unknown field"))
        .collect();
    let persistence = match body.get("sessionPersistence") {
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
                Some(Json::String(t)) if t == "HTTP_COOKIE" => Some(Persistence::HttpCookie),
                Some(Json::String(t)) if t == "SOURCE_IP" => Some(Persistence::SourceIp),
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
    match persistence {
        Some(p) if problems.is_empty() => Ok(p),
        _ => Err(ApiError::bad_request(problems)),
    }
}
