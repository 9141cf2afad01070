//! The admin API (SPEC 5) through the real binary: every route, changes that
//! alter routing for real (disable, affinity, drain, weight), refusals that
//! change nothing, the token, and the Rackspace-style session persistence.

mod support;

use std::time::Duration;

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
    let (status, h, body) = admin(&proxy, Method::DELETE, "/v1/pools/p", "", None);
    assert_eq!(
        refused((status, body), 405),
        ["method DELETE is not allowed here (allowed: GET)"]
    );
    assert_eq!(header(&h, "allow").as_deref(), Some("GET"));

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
