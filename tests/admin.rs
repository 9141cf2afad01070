//! The admin API (SPEC 5) through the real binary: every route, changes that
//! alter routing for real (disable, affinity, drain, weight), refusals that
//! change nothing, the token, and the Rackspace-style session persistence.
//! Then the listener's hardening (issue 17), over raw sockets where a forged
//! `Host` or `Origin` is needed: DNS rebinding and cross-site changes refused,
//! the client limits, the token checked before the body, the strict CSP.
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::api::{admin, get, ok, patch, refused};
use support::cflb::{keys_file, mint, unix_now};
use support::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn visit(
    proxy: &TetherProc,
    host: &str,
    cookie: Option<&str>,
) -> (u16, String, String, Option<String>) {
    visit_as(&client(), proxy, host, cookie)
}

/// An admin listener, `www.example.com` (as `www`) and `"*"` over pool `p` of `ups`.
fn with_admin<'a>(www: LoadBalancer, ups: impl IntoIterator<Item = &'a Upstream>) -> Tether {
    tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .load_balancer("www.example.com", www)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool(ups))
}

#[test]
fn healthz_and_metrics() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]), [&a]).start();
    let (status, h, body) = admin(&proxy, Method::GET, "/healthz", "", None);
    assert_eq!((status, body), (200, Value::String("ok".into())));
    assert!(header(&h, "content-type")
        .unwrap()
        .starts_with("text/plain"));

    let (status, h, _) = admin(&proxy, Method::GET, "/metrics", "", None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("text/plain; version=0.0.4")
    );
    let (status, h, _) = admin(&proxy, Method::POST, "/healthz", "", None);
    assert_eq!((status, header(&h, "allow").as_deref()), (405, Some("GET")));
}

#[test]
fn load_balancers_list_and_one() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]).affinity(Affinity::Cookie).fallback("p"), [&a]).start();
    let list = ok(get(&proxy, "/v1/load_balancers"));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|lb| lb["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["*", "www.example.com"]);

    let www = ok(get(&proxy, "/v1/load_balancers/www.example.com"));
    assert_eq!(www["session_affinity"], "cookie");
    assert_eq!(www["session_affinity_ttl"], 82_800);
    assert_eq!(www["fallback_pool"], "p");
    assert_eq!(www["steering_policy"], "off");
    assert_eq!(
        www["random_steering"],
        json!({"default_weight": 1.0, "pool_weights": {}})
    );
    assert_eq!(www["session_affinity_attributes"]["samesite"], "Auto");
    assert_eq!(
        www["adaptive_routing"],
        json!({"failover_across_pools": false})
    );

    let star = ok(get(&proxy, "/v1/load_balancers/%2A"));
    assert_eq!(
        (
            &star["name"],
            &star["session_affinity"],
            &star["fallback_pool"]
        ),
        (&json!("*"), &json!("none"), &Value::Null)
    );
    assert_eq!(
        refused(get(&proxy, "/v1/load_balancers/nope.example.com"), 404),
        [r#"no load balancer named "nope.example.com""#]
    );
}

#[test]
fn patch_enabled_false_answers_503_then_serves_again() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]), [&a]).start();
    assert_eq!(visit(&proxy, "www.example.com", None).0, 200);

    let r = ok(patch(
        &proxy,
        "/v1/load_balancers/www.example.com",
        r#"{"enabled": false}"#,
    ));
    assert_eq!(r["enabled"], false);
    assert_eq!(visit(&proxy, "www.example.com", None).0, 503);
    assert_eq!(
        visit(&proxy, "other.example.com", None).0,
        200,
        "only that load balancer"
    );
    assert!(proxy.wait_for_log(
        "admin: load balancer www.example.com: enabled true -> false",
        Duration::from_secs(5)
    ));

    ok(patch(
        &proxy,
        "/v1/load_balancers/www.example.com",
        r#"{"enabled": true}"#,
    ));
    assert_eq!(visit(&proxy, "www.example.com", None).0, 200);
}

#[test]
fn patch_session_affinity_sets_cookies_and_bad_patches_change_nothing() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let proxy = with_admin(lb(["p"]), [&a, &b]).start();
    let (_, _, d, cookie) = visit(&proxy, "www.example.com", None);
    assert_eq!((d.as_str(), cookie), ("none", None));

    let r = ok(patch(
        &proxy,
        "/v1/load_balancers/www.example.com",
        r#"{"session_affinity": "cookie", "session_affinity_attributes": {"samesite": "Strict"}}"#,
    ));
    assert_eq!(r["session_affinity"], "cookie");
    assert_eq!(r["session_affinity_ttl"], 82_800);
    let (_, h, _) = {
        let (s, h, b) = get_h(&client(), &proxy.url("/"), &[("host", "www.example.com")]);
        (s, h, b)
    };
    let line = set_cookie_line(&h, "__cflb").expect("a __cflb cookie after the change");
    assert!(line.contains("Max-Age=82800"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(proxy.wait_for_log(
        "admin: load balancer www.example.com: session_affinity none -> cookie",
        Duration::from_secs(5)
    ));

    // A pinned session sticks.
    let (_, first, _, cookie) = visit(&proxy, "www.example.com", None);
    let cookie = cookie.unwrap();
    for _ in 0..5 {
        let (_, endpoint, d, _) = visit(&proxy, "www.example.com", Some(&cookie));
        assert_eq!((endpoint.as_str(), d.as_str()), (first.as_str(), "hit"));
    }

    // Refusals name the field and change nothing.
    let before = ok(get(&proxy, "/v1/load_balancers/www.example.com"));
    for (body, message) in [
        (
            r#"{"session_affinity_ttl": 10}"#,
            "session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie, got 10",
        ),
        (r#"{"random_steering": {"default_weight": 0.5}}"#, "random_steering: cannot be changed at run time"),
        (r#"{"foo": 1}"#, "foo: unknown field"),
        (r#"{"default_pools": ["nope"]}"#, r#"default_pools[0]: no pool named "nope""#),
        (r#"{"session_affinity": "sticky"}"#, r#"session_affinity: must be one of "", none, cookie, ip_cookie, header, source_ip; got "sticky""#),
    ] {
        let errors = refused(patch(&proxy, "/v1/load_balancers/www.example.com", body), 400);
        assert_eq!(errors, [message], "{body}");
    }
    let errors = refused(
        patch(&proxy, "/v1/load_balancers/www.example.com", "{oops"),
        400,
    );
    assert!(errors[0].starts_with("invalid JSON"), "{errors:?}");
    assert_eq!(
        ok(get(&proxy, "/v1/load_balancers/www.example.com")),
        before
    );
    let (_, h, _) = get_h(&client(), &proxy.url("/"), &[("host", "www.example.com")]);
    assert!(set_cookie_line(&h, "__cflb")
        .unwrap()
        .contains("Max-Age=82800"));
}

#[test]
fn pools_show_health_weight_and_last_check() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool(
            "p",
            pool([endpoint(&a).weight(0.5), endpoint(&b)])
                .minimum_origins(1)
                .monitor("fast"),
        )
        .monitor("fast", Monitor::every(1.0))
        .start();
    b.set_healthy(false);
    let mut last = Value::Null;
    let seen = wait_until(Duration::from_secs(10), || {
        last = ok(get(&proxy, "/v1/pools/p"));
        last["endpoints"][1]["healthy"] == false && last["endpoints"][0]["last_check"]["ok"] == true
    });
    assert!(seen, "{last}");
    assert_eq!(
        last["healthy"], true,
        "one healthy endpoint meets minimum_origins"
    );
    assert_eq!(last["monitor"], "fast");
    assert_eq!(last["origin_steering"], json!({"policy": "random"}));
    let (ea, eb) = (&last["endpoints"][0], &last["endpoints"][1]);
    assert_eq!(
        (&ea["name"], &ea["weight"], &ea["healthy"]),
        (&json!("a"), &json!(0.5), &json!(true))
    );
    assert_eq!(ea["address"], a.addr().to_string());
    assert_eq!(eb["last_check"]["ok"], false);
    assert!(eb["last_check"]["failure"].is_string(), "{eb}");
    let time = ea["last_check"]["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.len() == 24,
        "RFC 3339 UTC: {time}"
    );

    a.set_healthy(false);
    assert!(wait_until(Duration::from_secs(10), || {
        ok(get(&proxy, "/v1/pools/p"))["healthy"] == false
    }));
    let all = ok(get(&proxy, "/v1/pools"));
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        refused(get(&proxy, "/v1/pools/nope"), 404),
        [r#"no pool named "nope""#]
    );
}

#[test]
fn disabling_an_endpoint_drains_it() {
    let (a, b, c) = (
        Upstream::healthy("a"),
        Upstream::healthy("b"),
        Upstream::healthy("c"),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .cookie_keys_file(&keys)
        .load_balancer("*", lb(["p"]).affinity(Affinity::Cookie).drain(30))
        .pool("p", pool([&a, &b, &c]))
        .start();
    let on_a = mint(KEY, "*", "p", "a", unix_now() + 3600);
    assert_eq!(visit(&proxy, "x", Some(&on_a)).2, "hit");

    let r = ok(patch(
        &proxy,
        "/v1/pools/p/endpoints/a",
        r#"{"enabled": false}"#,
    ));
    assert_eq!(r["enabled"], false);
    let left = r["draining"][0]["seconds_left"].as_u64().unwrap();
    assert!((1..=30).contains(&left), "{r}");
    assert_eq!(r["draining"][0]["load_balancer"], "*");
    let pool = ok(get(&proxy, "/v1/pools/p"));
    assert!(
        pool["endpoints"][0]["draining"][0]["seconds_left"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(proxy.wait_for_log(
        "admin: pool p endpoint a: enabled true -> false",
        Duration::from_secs(5)
    ));

    // New clients never reach it; the pinned session still does.
    for _ in 0..20 {
        let (status, endpoint, d, _) = visit(&proxy, "x", None);
        assert_eq!((status, d.as_str()), (200, "new"));
        assert_ne!(endpoint, "a", "no new session on a draining endpoint");
    }
    assert_eq!(
        visit(&proxy, "x", Some(&on_a)),
        (200, "a".into(), "hit".into(), None)
    );

    // Enabled again: no longer draining.
    let r = ok(patch(
        &proxy,
        "/v1/pools/p/endpoints/a",
        r#"{"enabled": true}"#,
    ));
    assert_eq!((&r["enabled"], &r["draining"]), (&json!(true), &json!([])));
}

#[test]
fn weight_zero_takes_no_new_traffic() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let proxy = with_admin(lb(["p"]), [&a, &b]).start();
    let r = ok(patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 0}"#));
    assert_eq!(r["weight"], 0.0);
    let before = b.requests();
    for _ in 0..30 {
        let (status, endpoint, _, _) = visit(&proxy, "x", None);
        assert_eq!((status, endpoint.as_str()), (200, "a"));
    }
    assert_eq!(b.requests(), before);
    assert_eq!(
        refused(
            patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 3}"#),
            400
        ),
        ["weight: must be between 0 and 1, got 3"]
    );
    assert_eq!(
        refused(
            patch(
                &proxy,
                "/v1/pools/p/endpoints/b",
                r#"{"enabled": false, "colour": "red"}"#
            ),
            400
        ),
        ["colour: unknown field"]
    );
    assert_eq!(
        ok(get(&proxy, "/v1/pools/p/endpoints/b"))["enabled"],
        true,
        "nothing applied"
    );
    assert_eq!(
        refused(
            patch(&proxy, "/v1/pools/p/endpoints/z", r#"{"weight": 1}"#),
            404
        ),
        [r#"pool "p" has no endpoint named "z""#]
    );
    let r = ok(patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 1}"#));
    assert_eq!(r["weight"], 1.0);
    assert!(wait_until(Duration::from_secs(5), || visit(
        &proxy, "x", None
    )
    .1 == "b"));
}

#[test]
fn session_persistence_get_put_delete() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let proxy = with_admin(lb(["p"]), [&a, &b]).start();
    let path = "/v1/load_balancers/www.example.com/session_persistence";
    let call = |method: Method, body: &str| {
        let (status, _, v) = admin(&proxy, method, path, body, None);
        (status, v)
    };
    assert_eq!(
        call(Method::GET, ""),
        (200, json!({"sessionPersistence": {}}))
    );

    let cookie = json!({"sessionPersistence": {"persistenceType": "HTTP_COOKIE"}});
    assert_eq!(
        call(Method::PUT, &cookie.to_string()),
        (200, cookie.clone())
    );
    assert_eq!(call(Method::GET, ""), (200, cookie.clone()));
    let (_, _, d, set) = visit(&proxy, "www.example.com", None);
    assert_eq!(d, "new");
    assert!(set.is_some(), "HTTP_COOKIE is the __cflb cookie");
    let lb = ok(get(&proxy, "/v1/load_balancers/www.example.com"));
    assert_eq!(
        (&lb["session_affinity"], &lb["session_affinity_ttl"]),
        (&json!("cookie"), &json!(82_800))
    );

    let source_ip = json!({"sessionPersistence": {"persistenceType": "SOURCE_IP"}});
    assert_eq!(
        call(Method::PUT, &source_ip.to_string()),
        (200, source_ip.clone())
    );
    let (_, first, _, set) = visit(&proxy, "www.example.com", None);
    assert_eq!(set, None, "SOURCE_IP sets no cookie");
    for _ in 0..5 {
        let (_, endpoint, d, _) = visit(&proxy, "www.example.com", None);
        assert_eq!((endpoint.as_str(), d.as_str()), (first.as_str(), "hit"));
    }

    let (status, body) = call(
        Method::PUT,
        r#"{"sessionPersistence": {"persistenceType": "APP_COOKIE"}}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["badRequest"]["message"],
        r#"sessionPersistence.persistenceType: must be HTTP_COOKIE or SOURCE_IP, got a string ("APP_COOKIE")"#
    );
    assert_eq!(call(Method::GET, ""), (200, source_ip));

    assert_eq!(
        call(Method::DELETE, ""),
        (200, json!({"sessionPersistence": {}}))
    );
    assert_eq!(visit(&proxy, "www.example.com", None).2, "none");
    let (status, body) = call(Method::DELETE, "");
    assert_eq!(status, 422);
    assert_eq!(body["unprocessableEntity"]["code"], 422, "{body}");
    assert!(body["unprocessableEntity"]["message"]
        .as_str()
        .unwrap()
        .contains("already disabled"));

    let (status, body) = get(&proxy, "/v1/load_balancers/nope/session_persistence");
    assert_eq!(status, 404);
    assert_eq!(
        body["itemNotFound"]["message"],
        r#"no load balancer named "nope""#
    );
}

#[test]
fn the_token_is_required() {
    let a = Upstream::healthy("a");
    let dir = tempfile::TempDir::new().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "  s3cret-token\n").unwrap();
    let proxy = tether()
        .listener(free_port())
        .admin_with_token(free_port(), &token_file)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a]))
        .start();
    let call = |path: &str, token: Option<&str>| admin(&proxy, Method::GET, path, "", token);

    let (status, h, body) = call("/v1/pools", None);
    assert_eq!(status, 401, "{body}");
    assert!(header(&h, "www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(call("/v1/pools", Some("wrong")).0, 401);
    assert_eq!(call("/metrics", None).0, 401);
    assert_eq!(call("/v1/pools", Some("s3cret-token")).0, 200);
    assert_eq!(call("/metrics", Some("s3cret-token")).0, 200);
    assert_eq!(
        call("/healthz", None).0,
        200,
        "load balancers probe /healthz without a token"
    );
    let (status, _, _) = admin(
        &proxy,
        Method::PATCH,
        "/v1/load_balancers/*",
        r#"{"enabled": false}"#,
        Some("wrong"),
    );
    assert_eq!(status, 401);
    assert_eq!(
        visit(&proxy, "x", None).0,
        200,
        "the refused change did not apply"
    );
}

#[test]
fn unknown_routes_methods_and_large_bodies() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]), [&a]).start();
    assert_eq!(
        refused(get(&proxy, "/v2/nothing"), 404),
        ["no route for /v2/nothing"]
    );
    assert_eq!(
        refused(get(&proxy, "/v1/pools/p/endpoints/zz"), 404),
        [r#"pool "p" has no endpoint named "zz""#]
    );
    let (status, h, body) = admin(&proxy, Method::POST, "/v1/pools/p", "", None);
    assert_eq!(
        refused((status, body), 405),
        ["method POST is not allowed here (allowed: GET, PUT, DELETE)"]
    );
    assert_eq!(header(&h, "allow").as_deref(), Some("GET, PUT, DELETE"));

    // Over 64 KiB: 413, with a Content-Length and chunked.
    let big = format!(
        "{{\"enabled\": true, \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    assert_eq!(
        refused(patch(&proxy, "/v1/load_balancers/*", &big), 413),
        ["the request body is larger than 65536 bytes"]
    );
    let response = client()
        .patch(proxy.admin_url("/v1/load_balancers/*"))
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            big.into_bytes(),
        )))
        .send()
        .expect("chunked PATCH");
    assert_eq!(response.status().as_u16(), 413);
    // The API still answers afterwards.
    assert_eq!(ok(get(&proxy, "/v1/load_balancers/*"))["enabled"], true);
}

#[test]
fn changes_made_through_the_api_survive_a_restart() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let start = || {
        tether()
            .listener(free_port())
            .admin(free_port())
            .state_file(&state_file)
            .load_balancer("*", lb(["p"]))
            .pool("p", pool([&a, &b]))
            .start()
    };
    let mut proxy = start();
    ok(patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 0}"#));
    ok(patch(
        &proxy,
        "/v1/load_balancers/*",
        r#"{"session_affinity": "source_ip", "session_affinity_ttl": 60}"#,
    ));
    assert!(
        state_file.exists(),
        "the change was written to the state file"
    );
    proxy.terminate();

    let proxy = start();
    assert_eq!(ok(get(&proxy, "/v1/pools/p/endpoints/b"))["weight"], 0.0);
    let lb = ok(get(&proxy, "/v1/load_balancers/*"));
    assert_eq!(
        (&lb["session_affinity"], &lb["session_affinity_ttl"]),
        (&json!("source_ip"), &json!(60))
    );
}

/// Small refusals and normalisations (issue 17 finding 9): a key named twice
/// in a body is refused naming it (serde_json would keep the last), `-0` is
/// stored, shown and written as 0, and a TTL past every bound is refused with
/// the type's range, as the file's reader says it.
#[test]
fn duplicate_keys_negative_zero_and_ttl_ranges() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .state_file(&state_file)
        .load_balancer("*", lb(["p"]).affinity(Affinity::Cookie))
        .pool("p", pool([&a, &b]))
        .start();
    let errors = refused(
        patch(
            &proxy,
            "/v1/pools/p/endpoints/b",
            r#"{"enabled": false, "enabled": true}"#,
        ),
        400,
    );
    assert!(
        errors.len() == 1 && errors[0].contains(r#"key "enabled" appears twice"#),
        "{errors:?}"
    );
    let errors = refused(
        patch(
            &proxy,
            "/v1/load_balancers/*",
            r#"{"session_affinity_attributes": {"samesite": "Lax", "samesite": "None"}}"#,
        ),
        400,
    );
    assert!(
        errors.len() == 1 && errors[0].contains(r#"key "samesite" appears twice"#),
        "{errors:?}"
    );
    assert_eq!(
        ok(get(&proxy, "/v1/pools/p/endpoints/b"))["enabled"],
        true,
        "nothing applied"
    );

    let shown = ok(patch(
        &proxy,
        "/v1/pools/p/endpoints/b",
        r#"{"weight": -0}"#,
    ))["weight"]
        .clone();
    let weight = shown.as_f64().expect("a number");
    assert!(weight == 0.0 && weight.is_sign_positive(), "{shown}");
    let (_, _, text) = send(
        &client(),
        Method::GET,
        &proxy.admin_url("/v1/pools/p/endpoints/b"),
        &[],
        "",
    );
    assert!(!text.contains("-0"), "{text}");
    let on_disk = std::fs::read_to_string(&state_file).expect("the state file");
    assert!(
        on_disk.contains("\"weight\"") && !on_disk.contains("-0"),
        "{on_disk}"
    );

    for ttl in ["604801", "9223372036854775808", "99999999999999999999"] {
        assert_eq!(
            refused(
                patch(
                    &proxy,
                    "/v1/load_balancers/*",
                    &format!(r#"{{"session_affinity_ttl": {ttl}}}"#)
                ),
                400
            )
            .iter()
            .map(|e| e.split(", got").next().unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
            ["session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie"],
            "{ttl}"
        );
    }
}

// ---------------------------------------------------------------- the listener's hardening

/// A raw connection to the admin listener (reads time out after 200 ms).
fn raw(addr: SocketAddr) -> TcpStream {
    raw_connect(addr)
}

/// Reads until the peer closes, a whole response came, or `within` passes.
fn read_for(s: &mut TcpStream, within: Duration) -> (String, bool) {
    read_until(s, within, whole_response)
}

/// Sends `request` on a new connection; the status and the whole answer (read until
/// it is complete, the connection closes, or 3 s pass).
fn exchange(addr: SocketAddr, request: &str) -> (Option<u16>, String) {
    let mut s = raw(addr);
    s.write_all(request.as_bytes()).expect("send");
    let (answer, _) = read_for(&mut s, Duration::from_secs(3));
    (status_of(&answer), answer)
}

fn status_of(answer: &str) -> Option<u16> {
    answer.get(9..12)?.parse().ok()
}

/// The `errors[0].message` of an enveloped answer's body.
fn first_error(answer: &str) -> String {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(v["success"], false, "{answer}");
    v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn token_file(dir: &tempfile::TempDir, token: &str) -> std::path::PathBuf {
    let path = dir.path().join("admin.token");
    std::fs::write(&path, token).unwrap();
    path
}

#[test]
fn without_a_token_a_request_for_another_host_is_refused_403_dns_rebinding() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]), [&a]).start();
    let addr = proxy.admin_addr();
    let port = addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        let (status, answer) = exchange(
            addr,
            &format!("GET /v1/pools HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, Some(200), "Host {host}: {answer}");
    }
    // A page on evil.example whose name now resolves to 127.0.0.1: its browser sends
    // that name as the Host.
    for (method, path) in [
        ("GET", "/v1/pools"),
        ("GET", "/"),
        ("GET", "/metrics"),
        ("PATCH", "/v1/load_balancers/www.example.com"),
    ] {
        let body = r#"{"enabled": false}"#;
        let (status, answer) = exchange(
            addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: evil.example:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(status, Some(403), "{method} {path}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{answer}"
        );
        let message = first_error(&answer);
        assert!(message.contains("DNS rebinding"), "{message}");
        assert!(message.contains("evil.example"), "{message}");
    }
    let (status, answer) = exchange(addr, "GET /v1/pools HTTP/1.0\r\n\r\n");
    assert_eq!(status, Some(403), "no Host: {answer}");
    assert!(
        proxy.log_lines("reason=invalid_request").is_empty(),
        "the admin API's own answers are not logged as the front door's refusals:\n{}",
        proxy.logs()
    );
    assert_eq!(
        ok(get(&proxy, "/v1/load_balancers/www.example.com"))["enabled"],
        true,
        "the refused PATCH changed nothing"
    );
}

/// A non-loopback address of this machine, if it has one (the source address of a
/// route to a documentation address; no packet is sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn without_a_token_only_loopback_clients_are_answered_with_one_any_client() {
    let a = Upstream::healthy("a");
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to connect from");
        return;
    };
    let port = free_port();
    let proxy = tether()
        .listener(free_port())
        .admin_at(&format!("0.0.0.0:{port}"), None)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a]))
        .start();
    let from_outside = SocketAddr::new(ip, port);
    let (status, answer) = exchange(
        from_outside,
        &format!("GET /healthz HTTP/1.1\r\nHost: 0.0.0.0:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, Some(403), "{answer}");
    let message = first_error(&answer);
    assert!(message.contains("loopback clients only"), "{message}");
    assert!(message.contains(&ip.to_string()), "{message}");
    let (status, answer) = exchange(
        proxy.admin_addr(),
        &format!("GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, Some(200), "{answer}");
    assert!(proxy.wait_for_log(
        "tether.admin has no token_file and listens on 0.0.0.0",
        Duration::from_secs(2)
    ));
    drop(proxy);

    // With a token the token is the guard: any client, any Host.
    let dir = tempfile::TempDir::new().unwrap();
    let token = token_file(&dir, "s3cret");
    let port = free_port();
    let _proxy = tether()
        .listener(free_port())
        .admin_at(&format!("0.0.0.0:{port}"), Some(&token))
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a]))
        .start();
    let (status, answer) = exchange(
        SocketAddr::new(ip, port),
        "GET /v1/pools HTTP/1.1\r\nHost: admin.internal.example\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(200), "{answer}");
}

#[test]
fn a_change_sent_for_another_site_is_refused_403_token_or_not() {
    let a = Upstream::healthy("a");
    let dir = tempfile::TempDir::new().unwrap();
    let token = token_file(&dir, "s3cret");
    for with_token in [false, true] {
        let mut t = tether()
            .listener(free_port())
            .load_balancer("*", lb(["p"]))
            .pool("p", pool([&a]));
        t = if with_token {
            t.admin_with_token(free_port(), &token)
        } else {
            t.admin(free_port())
        };
        let proxy = t.start();
        let own_origin = format!("http://{}", proxy.admin_host());
        let patch_with = |extra: &[(&str, &str)], body: &str| {
            let mut headers = vec![
                ("content-type", "application/json"),
                ("authorization", "Bearer s3cret"),
            ];
            headers.extend_from_slice(extra);
            let (status, _, text) = send(
                &client(),
                Method::PATCH,
                &proxy.admin_url("/v1/pools/p/endpoints/a"),
                &headers,
                body,
            );
            (status, text)
        };
        for forged in [
            vec![("origin", "http://evil.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
            vec![
                ("sec-fetch-site", "same-site"),
                ("origin", own_origin.as_str()),
            ],
        ] {
            let (status, text) = patch_with(&forged, r#"{"enabled": false}"#);
            assert_eq!(status, 403, "token={with_token} {forged:?}: {text}");
            assert!(text.contains("cross-site request forgery"), "{text}");
        }
        let view = admin(
            &proxy,
            Method::GET,
            "/v1/pools/p/endpoints/a",
            "",
            Some("s3cret"),
        );
        assert_eq!(view.2["result"]["enabled"], true, "nothing changed");
        // The status page's own fetch(): same origin.
        let (status, text) = patch_with(
            &[
                ("origin", own_origin.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
            r#"{"weight": 0.5}"#,
        );
        assert_eq!(status, 200, "token={with_token}: {text}");
        // A client that is not a browser sends neither field.
        let (status, text) = patch_with(&[], r#"{"weight": 1}"#);
        assert_eq!(status, 200, "token={with_token}: {text}");
        // Reads are not changes.
        let (status, _, _) = send(
            &client(),
            Method::GET,
            &proxy.admin_url("/healthz"),
            &[
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            "",
        );
        assert_eq!(status, 200);
    }
}

#[test]
fn a_wrong_or_missing_token_is_answered_401_before_the_body_is_read() {
    let a = Upstream::healthy("a");
    let dir = tempfile::TempDir::new().unwrap();
    let token = token_file(&dir, "s3cret");
    let proxy = tether()
        .listener(free_port())
        .admin_with_token(free_port(), &token)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a]))
        .start();
    let addr = proxy.admin_addr();
    for (auth, length) in [
        ("Authorization: Bearer wrong\r\n", 10_000_000),
        ("", 10_000_000),
        ("Authorization: Bearer wrong\r\n", 1_000),
        ("", 1_000),
    ] {
        // The header, then a few bytes of a body that would take long to come.
        let mut s = raw(addr);
        let started = Instant::now();
        s.write_all(
            format!(
                "PATCH /v1/load_balancers/* HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: {length}\r\n\r\n{{\"enabled\": ",
                proxy.admin_host()
            )
            .as_bytes(),
        )
        .unwrap();
        let (answer, _) = read_for(&mut s, Duration::from_secs(3));
        let took = started.elapsed();
        assert_eq!(
            status_of(&answer),
            Some(401),
            "{auth:?} {length}: {answer:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "answered after {took:?}: the body was waited for"
        );
    }
    // The right token: the body is read and the change applies.
    let (status, _, v) = admin(
        &proxy,
        Method::PATCH,
        "/v1/load_balancers/*",
        r#"{"enabled": false}"#,
        Some("s3cret"),
    );
    assert_eq!(status, 200, "{v}");
}

#[test]
fn the_admin_listener_has_the_client_limits() {
    let a = Upstream::healthy("a");
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .client_limits(ClientLimits {
            max_connections: Some(4),
            header_timeout: Some(2.0),
            max_request_header_bytes: Some(2048),
            ..ClientLimits::default()
        })
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a]))
        .start();
    let addr = proxy.admin_addr();
    let host = proxy.admin_host();
    let full = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    // The start-up readiness probes are gone once a whole request is answered on each
    // of four connections in turn.
    assert!(wait_until(Duration::from_secs(5), || {
        (0..4).all(|_| exchange(addr, &full).0 == Some(200))
    }));

    // Four half-open connections: a header that never completes. One the listener
    // closes at once was refused because an earlier connection (a readiness probe's)
    // was still counted for a moment: it is opened again (at most 20 tries).
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..20 {
        if held.len() == 4 {
            break;
        }
        let mut s = raw(addr);
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes())
            .unwrap();
        let (_, closed) = read_for(&mut s, Duration::from_millis(100));
        if !closed {
            held.push(s);
        }
    }
    assert_eq!(held.len(), 4, "four half-open connections held");
    // A fifth is closed at once, unanswered.
    let mut extra = raw(addr);
    let _ = extra.write_all(full.as_bytes());
    let (got, closed) = read_for(&mut extra, Duration::from_secs(1));
    assert!(
        closed && got.is_empty(),
        "a connection past max_connections was served: {got:?}"
    );
    // The proxy's connections are counted apart: it still serves.
    assert_eq!(get_h(&client(), &proxy.url("/"), &[]).0, 200);
    // The half-open ones are answered 408 at header_timeout, and closed.
    let started = Instant::now();
    for s in &mut held {
        let (answer, _) = read_for(s, Duration::from_secs(5));
        assert_eq!(status_of(&answer), Some(408), "{answer:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "408 after {:?}",
        started.elapsed()
    );
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || exchange(addr, &full).0
            == Some(200)),
        "new connections are accepted again"
    );
    assert!(proxy.wait_for_log(
        "admin listener: client_limits.max_connections (4) reached",
        Duration::from_secs(2)
    ));
    // A header over max_request_header_bytes: 431.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
        "x".repeat(4000)
    );
    assert_eq!(exchange(addr, &big).0, Some(431));
}

#[test]
fn the_status_page_is_served_under_a_strict_csp() {
    let a = Upstream::healthy("a");
    let proxy = with_admin(lb(["p"]), [&a]).start();
    let (status, h, page) = send(&client(), Method::GET, &proxy.admin_url("/"), &[], "");
    assert_eq!(status, 200);
    let csp = header(&h, "content-security-policy").unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert!(
        page.contains("<script src=\"/status.js\"></script>"),
        "{page}"
    );
    assert!(!page.contains("<style"), "no inline styles");
    let (status, h, script) = send(
        &client(),
        Method::GET,
        &proxy.admin_url("/status.js"),
        &[],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.contains("function refresh()"));
    assert!(
        !script.contains("f.has(\"drain\")"),
        "no action from the URL"
    );
    let (status, h, _) = send(
        &client(),
        Method::GET,
        &proxy.admin_url("/status.css"),
        &[],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
}
