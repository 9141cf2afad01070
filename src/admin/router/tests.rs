//! The admin API through its router: every route, refusals, the token.

use super::*;
use crate::admin::metrics::PROMETHEUS;
use crate::admin::response::JSON;
use crate::affinity::cookie::CookieKeys;
use crate::clock::MONOTONIC_BASE;
use crate::config::{self, OriginSteering, SessionAffinity};
use crate::state::fixtures::{config, pool, set_health};
use crate::state::{LastCheck, State};
use serde_json::json;
use serde_json::Value as Json;

const NOW: Now = Now {
    ms: MONOTONIC_BASE + 5_000,
    unix_secs: 1_700_000_000,
};

/// Pools `p` (3 endpoints) and `q` (2); load balancers `*` (p) and
/// `www.example.com` (p, then q).
fn setup(token: Option<&str>) -> (Router, Arc<State>) {
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
    let live = crate::state::live::Live::new(State::new(&cfg, CookieKeys::random()));
    let changes = Arc::new(Changes::new(live, cfg));
    let state = changes.state();
    (Router::new(token, changes), state)
}

struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    text: String,
}

impl Reply {
    fn json(&self) -> Json {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
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
    let _ = state;
    let r = router.handle(AdminRequest {
        method,
        path,
        authorization: auth.map(str::as_bytes),
        host: Some(b"127.0.0.1:9180"),
        origin: None,
        sec_fetch_site: None,
        client_ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        body,
        client: "127.0.0.1",
        now,
    });
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
fn the_status_page_loads_without_a_token_and_its_data_needs_one() {
    let (router, state) = setup(Some("s3cret"));
    let r = call(&router, &state, "GET", "/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    assert!(r.text.contains("<title>Tether status</title>"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("connect-src 'self'")));
    assert_eq!(call(&router, &state, "POST", "/", "").status, 405);
    assert_eq!(call(&router, &state, "GET", "/v1/status", "").status, 401);
    let r = call_full(
        &router,
        &state,
        "GET",
        "/v1/status",
        Some("Bearer s3cret"),
        b"",
        NOW,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    let lbs = v["result"]["load_balancers"].as_array().unwrap();
    assert!(!lbs.is_empty());
    assert_eq!(lbs[0]["serving"], serde_json::json!(["p"]), "{}", r.text);
    assert_eq!(v["result"]["sessions"], 0);
}

#[test]
fn the_token_is_required_everywhere_else() {
    let (router, state) = setup(Some("s3cret"));
    let get =
        |auth: Option<&str>, path: &str| call_full(&router, &state, "GET", path, auth, b"", NOW);
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
        ("GET", "/nothing", "no route for /nothing"),
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
        ("POST", "/v1/pools/p", "GET, PUT, DELETE"),
        ("PUT", "/v1/load_balancers", "GET"),
        ("POST", "/v1/load_balancers/*", "GET, PATCH, PUT, DELETE"),
        ("POST", "/v1/monitors/m", "GET, PUT, DELETE"),
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
    crate::changes::test_door::set_endpoint_weight(&state, q1, 0.25);
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
            "read_timeout": null,
            "healthy": true,
            "endpoints": [
                {
                    "name": "q-0", "address": "127.0.0.1:9000", "enabled": true,
                    "weight": 1.0, "healthy": false, "in_flight": 0, "draining": [],
                    "last_check": {"time": "2023-11-14T22:13:20.123Z", "ok": false, "failure": "connect: ConnectRefused"},
                    "ejected_seconds_left": 0, "ejections": 0,
                    "upgraded_connections": 0
                },
                {
                    "name": "q-1", "address": "127.0.0.1:9001", "enabled": true,
                    "weight": 0.25, "healthy": true, "in_flight": 0, "draining": [],
                    "last_check": {"time": "2023-11-14T22:13:21.000Z", "ok": true, "failure": null},
                    "ejected_seconds_left": 0, "ejections": 0,
                    "upgraded_connections": 0
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
    let ring_before = state.pools[at.pool()].ring().clone();
    let r = call(&router, &state, "PATCH", path, r#"{"weight": 0}"#).result();
    assert_eq!(r["weight"], 0.0);
    assert_eq!(state.endpoint(at).weight(), 0.0);
    assert!(!std::sync::Arc::ptr_eq(
        &ring_before,
        &state.pools[at.pool()].ring()
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
        (conf.session_affinity, conf.session_affinity_ttl.as_secs()),
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
        (conf.session_affinity, conf.session_affinity_ttl.as_secs()),
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
        (conf.session_affinity, conf.session_affinity_ttl.as_secs()),
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
fn paths_are_percent_decoded() {
    assert_eq!(
        split_path("/v1/load_balancers/%2A/"),
        Some(vec!["v1".into(), "load_balancers".into(), "*".into()])
    );
    assert_eq!(split_path("/a%2"), Some(vec!["a%2".into()]));
    assert_eq!(split_path("/%C3%A9"), Some(vec!["é".into()]));
    assert_eq!(split_path("/%ff"), None);
}

/// A request as `call_full` sends it: loopback client, `Host: 127.0.0.1:9180`.
fn request<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> AdminRequest<'a> {
    AdminRequest {
        method,
        path,
        authorization: None,
        host: Some(b"127.0.0.1:9180"),
        origin: None,
        sec_fetch_site: None,
        client_ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        body,
        client: "127.0.0.1",
        now: NOW,
    }
}

#[test]
fn the_status_pages_script_and_styles_load_without_a_token_under_a_strict_csp() {
    let (router, state) = setup(Some("s3cret"));
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/status.js", "text/javascript; charset=utf-8"),
        ("/status.css", "text/css; charset=utf-8"),
    ] {
        let r = call(&router, &state, "GET", path, "");
        assert_eq!((r.status, r.content_type), (200, content_type), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    assert!(call(&router, &state, "GET", "/status.js", "")
        .text
        .contains("function refresh()"));
    assert_eq!(call(&router, &state, "GET", "/status.jsx", "").status, 401);
}

#[test]
fn without_a_token_a_foreign_host_or_client_is_refused_403() {
    let (router, state) = setup(None);
    let _ = state;
    let router = router.listening_on("127.0.0.1:9180");
    let ok = router.handle(request("GET", "/v1/pools", b""));
    assert_eq!(ok.status, 200, "{}", ok.text());
    for path in ["/v1/pools", "/", "/healthz", "/metrics"] {
        let rebound = AdminRequest {
            host: Some(b"evil.example:9180"),
            ..request("GET", path, b"")
        };
        let r = router.handle(rebound);
        assert_eq!(r.status, 403, "{path}");
        let body: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["success"], false);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("DNS rebinding"),
            "{body}"
        );
    }
    let remote = AdminRequest {
        client_ip: Some("192.0.2.7".parse().unwrap()),
        ..request("GET", "/v1/pools", b"")
    };
    assert_eq!(router.handle(remote).status, 403);

    // With a token, the token is the guard.
    let (router, _) = setup(Some("s3cret"));
    let router = router.listening_on("127.0.0.1:9180");
    let remote = AdminRequest {
        client_ip: Some("192.0.2.7".parse().unwrap()),
        host: Some(b"admin.example"),
        authorization: Some(b"Bearer s3cret"),
        ..request("GET", "/v1/pools", b"")
    };
    assert_eq!(router.handle(remote).status, 200);
}

#[test]
fn a_cross_site_change_is_refused_403_token_or_not_and_changes_nothing() {
    for token in [None, Some("s3cret")] {
        let (router, state) = setup(token);
        let router = router.listening_on("127.0.0.1:9180");
        let forged = AdminRequest {
            origin: Some(b"http://evil.example"),
            authorization: Some(b"Bearer s3cret"),
            ..request("PATCH", "/v1/load_balancers/*", br#"{"enabled": false}"#)
        };
        let r = router.handle(forged);
        assert_eq!(r.status, 403, "{}", r.text());
        let fetched = AdminRequest {
            sec_fetch_site: Some(b"cross-site"),
            authorization: Some(b"Bearer s3cret"),
            ..request("PATCH", "/v1/load_balancers/*", br#"{"enabled": false}"#)
        };
        assert_eq!(router.handle(fetched).status, 403);
        assert!(lb_conf(&router.changes().state(), "*").enabled);
        let _ = state;
        // The status page's own call.
        let page = AdminRequest {
            origin: Some(b"http://127.0.0.1:9180"),
            sec_fetch_site: Some(b"same-origin"),
            authorization: Some(b"Bearer s3cret"),
            ..request("PATCH", "/v1/load_balancers/*", br#"{"enabled": false}"#)
        };
        let r = router.handle(page);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!lb_conf(&router.changes().state(), "*").enabled);
    }
}

#[test]
fn the_token_is_checked_from_the_header_alone_before_the_body() {
    let (router, _) = setup(Some("s3cret"));
    // `admit` sees no body: a wrong token is refused before one is read.
    let head = AdminRequest {
        authorization: Some(b"Bearer wrong"),
        ..request("PATCH", "/v1/load_balancers/*", b"")
    };
    let refused = router.admit(&head).unwrap_err();
    assert_eq!(refused.status, 401);
    let missing = request("PATCH", "/v1/load_balancers/*", b"");
    assert_eq!(router.admit(&missing).unwrap_err().status, 401);
    let right = AdminRequest {
        authorization: Some(b"Bearer s3cret"),
        ..request("PATCH", "/v1/load_balancers/*", b"")
    };
    assert!(router.admit(&right).is_ok());
    assert!(router.admit(&request("GET", "/status.js", b"")).is_ok());
    // Even a body over the limit is answered 401 without the token, not 413.
    let big = vec![b' '; MAX_BODY + 1];
    let r = router.handle(request("PATCH", "/v1/load_balancers/*", &big));
    assert_eq!(r.status, 401);
}
