//! What every admin answer is made of: Cloudflare's envelope
//! `{"success", "errors", "result"}`, Rackspace's faults for
//! `session_persistence`, and [`ApiError`], a refusal with its status and
//! one message per problem.

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::changes::ChangeError;
use crate::state::NotFound;

/// Request bodies larger than this are refused with `413`.
pub const MAX_BODY: usize = 64 * 1024;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// An answer: status, content type, body and any extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// More headers (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl AdminResponse {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        AdminResponse {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &impl Serialize) -> Self {
        // Serialising these plain values cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self::new(status, JSON, body)
    }

    /// `200` with `result` in Cloudflare's envelope.
    pub fn ok(result: &impl Serialize) -> Self {
        Self::json(200, &Envelope::ok(result))
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The body as text (tests and logs).
    #[cfg(test)]
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<binary>")
    }
}

/// Cloudflare's response envelope.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub result: Option<T>,
}

#[derive(Debug, Serialize)]
pub struct ErrorItem {
    pub message: String,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(result: T) -> Self {
        Envelope {
            success: true,
            errors: Vec::new(),
            result: Some(result),
        }
    }
}

impl Envelope<()> {
    pub fn errors(messages: &[String]) -> Self {
        Envelope {
            success: false,
            errors: messages
                .iter()
                .map(|m| ErrorItem { message: m.clone() })
                .collect(),
            result: None,
        }
    }
}

/// A refusal: status and one message per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub messages: Vec<String>,
    /// `405`: the methods the path takes.
    pub allow: Option<&'static [&'static str]>,
}

pub type Answer = Result<AdminResponse, ApiError>;

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            messages: vec![message.into()],
            allow: None,
        }
    }

    pub fn bad_request(messages: Vec<String>) -> Self {
        ApiError {
            status: 400,
            messages,
            allow: None,
        }
    }

    /// In Cloudflare's envelope.
    pub fn envelope(self) -> AdminResponse {
        let response = AdminResponse::json(self.status, &Envelope::errors(&self.messages));
        self.finish(response)
    }

    /// As a Rackspace fault: `{"itemNotFound": {"code": 404, "message": ...}}`.
    pub fn fault(self) -> AdminResponse {
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

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound(e) => e.into(),
            ChangeError::Invalid(problems) => ApiError::bad_request(problems),
            e @ ChangeError::AlreadyOff { .. } => ApiError::new(422, e.to_string()),
            e @ ChangeError::NotDurable(_) => ApiError::new(500, e.to_string()),
            e @ (ChangeError::FileDefined { .. } | ChangeError::InUse { .. }) => {
                ApiError::new(409, e.to_string())
            }
            e @ ChangeError::NoSuchObject { .. } => ApiError::new(404, e.to_string()),
            e @ ChangeError::TooLarge { .. } => ApiError::new(413, e.to_string()),
        }
    }
}

/// `Ok` when `method` is one of `methods`, else `405` with `Allow`.
pub fn allow(method: &str, methods: &'static [&'static str]) -> Result<(), ApiError> {
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

/// The `413` answer, sent without reading the rest of the body.
pub fn too_large_response() -> AdminResponse {
    ApiError::new(
        413,
        format!("the request body is larger than {MAX_BODY} bytes"),
    )
    .envelope()
}

/// The `400` answer when the body cannot be read.
pub fn bad_body_response(why: &str) -> AdminResponse {
    ApiError::new(400, format!("cannot read the request body: {why}")).envelope()
}

/// A JSON object body, each key named once at every depth.
pub fn json_object(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    match super::strict_json::from_slice(body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::new(
            400,
            format!("the body must be a JSON object, got {}", describe(&other)),
        )),
        Err(e) => Err(ApiError::new(400, format!("invalid JSON: {e}"))),
    }
}

/// `a string ("x")`, `a number (3)`, `null`, ...
pub fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("a boolean ({b})"),
        Json::Number(n) => format!("a number ({n})"),
        Json::String(s) => format!("a string ({})", crate::config::read::quote(s)),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ObjectKind;

    #[test]
    fn an_object_too_large_for_the_cluster_is_413_in_both_envelopes() {
        let e = ApiError::from(ChangeError::TooLarge {
            kind: ObjectKind::Pool,
            name: "big".into(),
            bytes: 70_000,
            limit: 65_000,
        });
        assert_eq!(e.status, 413);
        assert!(e.messages[0].contains("pool \"big\""), "{:?}", e.messages);
        assert!(e.messages[0].contains("at most 65000"), "{:?}", e.messages);
        assert_eq!(e.clone().envelope().status, 413);
        assert!(e.fault().text().contains("overLimit"));
    }
}
