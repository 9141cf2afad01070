//! Monitors, pools and load balancers as objects (issue 21): `GET
//! /v1/objects/{monitors|pools|load_balancers}` lists the file's and the
//! run-time objects alike, each with its ID and origin; `GET`, `PUT` and
//! `DELETE /v1/monitors/{name}`, and `PUT` and `DELETE` on
//! `/v1/pools/{name}` and `/v1/load_balancers/{name}`, read, create or
//! replace (the whole entry, in the `tether:` YAML form as JSON) and delete
//! one, through the owner of changes ([`Change::PutObject`],
//! [`Change::DeleteObject`]). Docs: docs/admin-api.md.

use super::call::Call;
use super::response::{allow, AdminResponse, Answer, ApiError};
use super::strict_json;
use crate::changes::{Change, ObjectKind};

/// The kind a section of `tether:` holds.
pub fn kind_of(section: &str) -> Option<ObjectKind> {
    ObjectKind::ALL.into_iter().find(|k| k.section() == section)
}

/// `GET /v1/objects/{section}` (and `GET /v1/monitors`).
pub fn list(call: &Call<'_>, section: &str) -> Answer {
    allow(call.method, &["GET"])?;
    let kind = kind_of(section).ok_or_else(|| {
        ApiError::new(
            404,
            format!("no objects named {section:?}: monitors, pools or load_balancers"),
        )
    })?;
    Ok(AdminResponse::ok(&call.changes().objects(kind)))
}

/// `GET`, `PUT` or `DELETE /v1/monitors/{name}`.
pub fn monitor(call: &Call<'_>, name: &str) -> Answer {
    allow(call.method, &["GET", "PUT", "DELETE"])?;
    match call.method {
        "GET" => call
            .changes()
            .object(ObjectKind::Monitor, name)
            .map(|view| AdminResponse::ok(&view))
            .ok_or_else(|| ApiError::new(404, format!("no monitor named {name:?}"))),
        _ => write(call, ObjectKind::Monitor, name),
    }
}

/// `PUT` (create or replace with the body, the whole entry) or `DELETE` of
/// one object; answers with the object as it is in force after a `PUT`,
/// as it was before a `DELETE`.
pub fn write(call: &Call<'_>, kind: ObjectKind, name: &str) -> Answer {
    allow(call.method, &["PUT", "DELETE"])?;
    if call.method == "DELETE" {
        let before = call.changes().object(kind, name);
        call.apply(&[Change::DeleteObject {
            kind,
            name: name.to_string(),
        }])?;
        return before
            .map(|view| AdminResponse::ok(&view))
            .ok_or_else(|| ApiError::new(404, format!("no {} named {name:?}", kind.noun())));
    }
    let value = strict_json::from_slice(call.body)
        .map_err(|e| ApiError::bad_request(vec![format!("the body is not JSON: {e}")]))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(vec![format!(
            "the body must be a JSON object: the {}'s entry of tether.{}",
            kind.noun(),
            kind.section()
        )]));
    }
    call.apply(&[Change::PutObject {
        kind,
        name: name.to_string(),
        value,
    }])?;
    call.changes()
        .object(kind, name)
        .map(|view| AdminResponse::ok(&view))
        .ok_or_else(|| ApiError::new(500, "the object was put but is not in force"))
}
