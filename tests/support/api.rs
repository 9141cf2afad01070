//! Calls to a running Tether's admin API, answers parsed as JSON.

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use super::{client, send, TetherProc};

/// An admin call: status, headers, body parsed as JSON (`Value::String` of the
/// text when it is not JSON).
pub fn admin(
    proxy: &TetherProc,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(auth) = auth.as_deref() {
        headers.push(("authorization", auth));
    }
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let (status, h, text) = send(&client(), method, &proxy.admin_url(path), &headers, body);
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, h, value)
}

pub fn get(proxy: &TetherProc, path: &str) -> (u16, Value) {
    let (status, _, v) = admin(proxy, Method::GET, path, "", None);
    (status, v)
}

pub fn patch(proxy: &TetherProc, path: &str, body: &str) -> (u16, Value) {
    let (status, _, v) = admin(proxy, Method::PATCH, path, body, None);
    (status, v)
}

/// The `result` of a successful enveloped answer.
pub fn ok(answer: (u16, Value)) -> Value {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    body["result"].clone()
}

/// The messages of an enveloped error, checking its status.
pub fn refused(answer: (u16, Value), status: u16) -> Vec<String> {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// The entry of endpoint `endpoint` in `GET /v1/pools/{pool}` (its `healthy`,
/// `last_check`, `draining`, ...).
pub fn endpoint_view(proxy: &TetherProc, pool: &str, endpoint: &str) -> Value {
    let view = ok(get(proxy, &format!("/v1/pools/{pool}")));
    view["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("no endpoints in {view}"))
        .iter()
        .find(|e| e["name"] == endpoint)
        .cloned()
        .unwrap_or_else(|| panic!("pool {pool} has no endpoint {endpoint}: {view}"))
}

/// Polls `GET /v1/pools/{pool}` (bounded by `timeout`) until the monitor's verdict on
/// `endpoint` is `healthy`; panics with the last view and the logs otherwise. Returns
/// the endpoint's last view (with its `last_check`).
pub fn wait_for_health(
    proxy: &TetherProc,
    pool: &str,
    endpoint: &str,
    healthy: bool,
    timeout: std::time::Duration,
) -> Value {
    let mut last = Value::Null;
    let reached = super::wait_until(timeout, || {
        last = endpoint_view(proxy, pool, endpoint);
        last["healthy"] == healthy && !last["last_check"].is_null()
    });
    assert!(
        reached,
        "pool {pool} endpoint {endpoint} not healthy={healthy} within {timeout:?}: {last}\n{}",
        proxy.logs()
    );
    last
}

/// `GET /v1/cluster`'s result: this replica's link (`connected`,
/// `last_sync_unix_ms`, counters) and the replicas it sees.
pub fn cluster_view(proxy: &TetherProc) -> Value {
    ok(get(proxy, "/v1/cluster"))
}

/// Polls `GET /v1/cluster` (bounded by `timeout`) until `connected` is
/// `connected` and, when connected, the last full resync is after
/// `synced_after_ms` (unix ms); panics with the last view and the logs.
pub fn wait_for_link(
    proxy: &TetherProc,
    connected: bool,
    synced_after_ms: u64,
    timeout: std::time::Duration,
) -> Value {
    let mut last = Value::Null;
    let reached = super::wait_until(timeout, || {
        last = cluster_view(proxy);
        last["connected"] == connected
            && (!connected || last["last_sync_unix_ms"].as_u64().unwrap_or(0) > synced_after_ms)
    });
    assert!(
        reached,
        "cluster link not connected={connected} within {timeout:?}: {last}\n{}",
        proxy.logs()
    );
    last
}
