//! Load balancing rules (Cloudflare's, docs/rules.md) through the real
//! binary and real upstreams: path-based routing, fixed responses, priority,
//! terminates and disabled, session affinity under a rule, and the rule's
//! name in `X-Tether-Decision`, the access log and the metrics.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;

fn api_and_moved(lb: LoadBalancer) -> LoadBalancer {
    lb.rule(
        rule("api", r#"starts_with(http.request.uri.path, "/api/")"#)
            .priority(10)
            .terminates(true)
            .overrides(Overrides::pools(["api"])),
    )
    .rule(
        rule("moved", r#"http.request.uri.path eq "/old""#).fixed_response(FixedResponse {
            status_code: Some(301),
            location: Some("https://www.example.com/new".into()),
            content_type: Some("text/plain".into()),
            message_body: Some("moved".into()),
        }),
    )
}

#[test]
fn path_rules_route_to_their_pool_and_fixed_responses_answer() {
    let web = Upstream::healthy("web-1");
    let api = Upstream::healthy("api-1");
    let admin_port = free_port();
    let proxy = tether()
        .listener(free_port())
        .admin(admin_port)
        .decision_header()
        .load_balancer("www.example.com", api_and_moved(lb(["web"])))
        .pool("web", pool([&web]))
        .pool("api", pool([&api]))
        .start();
    let client = client();

    let (status, headers, body) = get(&client, &proxy.url("/api/users?id=1"), "www.example.com");
    assert_eq!((status, body.as_str()), (200, "api-1"));
    assert_eq!(
        header(&headers, "x-tether-decision").as_deref(),
        Some("www.example.com/api/api-1/none/api")
    );
    let (status, headers, body) = get(&client, &proxy.url("/apiary"), "www.example.com");
    assert_eq!((status, body.as_str()), (200, "web-1"));
    assert_eq!(
        header(&headers, "x-tether-decision").as_deref(),
        Some("www.example.com/web/web-1/none"),
        "no rule applied"
    );

    let (status, headers, body) = get(&client, &proxy.url("/old"), "www.example.com");
    assert_eq!((status, body.as_str()), (301, "moved"));
    assert_eq!(
        header(&headers, "location").as_deref(),
        Some("https://www.example.com/new")
    );
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(
        header(&headers, "x-tether-decision").as_deref(),
        Some("www.example.com/-/-/none/moved")
    );
    assert_eq!(
        web.requests() + api.requests(),
        2,
        "the fixed response reached no upstream"
    );

    // The metrics count each rule's requests (once the request's `logging`
    // ran, just after its response was sent); the access log names the rule.
    let lines = [("api", 1), ("moved", 1)].map(|(rule, n)| {
        format!(
            "tether_rule_requests_total{{load_balancer=\"www.example.com\",rule=\"{rule}\"}} {n}"
        )
    });
    let mut metrics = String::new();
    let counted = wait_until(Duration::from_secs(5), || {
        metrics = get(&client, &proxy.admin_url("/metrics"), &proxy.admin_host()).2;
        lines.iter().all(|l| metrics.contains(l.as_str()))
    });
    assert!(counted, "{lines:?} in:\n{metrics}");
    // A run-time change keeps the rules (laid over the new settings); the
    // rules themselves are file-only.
    api::ok(api::patch(
        &proxy,
        "/v1/load_balancers/www.example.com",
        r#"{"steering_policy": "random"}"#,
    ));
    let (_, _, body) = get(&client, &proxy.url("/api/again"), "www.example.com");
    assert_eq!(body, "api-1");
    let errors = api::refused(
        api::patch(
            &proxy,
            "/v1/load_balancers/www.example.com",
            r#"{"rules": []}"#,
        ),
        400,
    );
    assert!(errors[0].contains("rules"), "{errors:?}");
    assert!(
        wait_until(Duration::from_secs(5), || proxy
            .stderr()
            .contains("path=/old status=301")
            && proxy.stderr().contains(" rule=moved")),
        "access log:\n{}",
        proxy.stderr()
    );
}

#[test]
fn priority_terminates_and_disabled_as_cloudflare_documents() {
    let web = Upstream::healthy("web-1");
    let beta = Upstream::healthy("beta-1");
    let api = Upstream::healthy("api-1");
    let proxy = tether()
        .listener(free_port())
        .decision_header()
        .load_balancer(
            "www.example.com",
            lb(["web"])
                // Runs second (priority 5): non-terminating, so a later rule
                // may still change what it set.
                .rule(
                    rule("beta", r#"http.request.cookies["beta"][0] eq "1""#)
                        .priority(5)
                        .overrides(Overrides::pools(["beta"])),
                )
                // Runs last: its pools replace beta's for /api/.
                .rule(
                    rule("api", r#"starts_with(http.request.uri.path, "/api/")"#)
                        .priority(9)
                        .overrides(Overrides::pools(["api"])),
                )
                // Runs first, but disabled.
                .rule(
                    rule("off", "")
                        .priority(0)
                        .disabled(true)
                        .fixed_response(FixedResponse::default()),
                )
                // Runs first and terminates for HEAD-less admin paths.
                .rule(
                    rule("pinned", r#"http.request.uri.path in {"/pinned"}"#)
                        .priority(1)
                        .terminates(true)
                        .overrides(Overrides::pools(["web"])),
                ),
        )
        .pool("web", pool([&web]))
        .pool("beta", pool([&beta]))
        .pool("api", pool([&api]))
        .start();
    let client = client();
    let visit = |path: &str, beta_cookie: bool| {
        let mut h = vec![("host", "www.example.com")];
        if beta_cookie {
            h.push(("cookie", "a=b; beta=1"));
        }
        let (status, headers, body) = get_h(&client, &proxy.url(path), &h);
        assert_eq!(status, 200, "{path}: {body}");
        let rule = header(&headers, "x-tether-decision")
            .and_then(|d| d.split('/').nth(4).map(str::to_string))
            .unwrap_or_default();
        (body, rule)
    };
    assert_eq!(visit("/", false), ("web-1".into(), "".into()));
    assert_eq!(visit("/", true), ("beta-1".into(), "beta".into()));
    assert_eq!(visit("/api/x", false), ("api-1".into(), "api".into()));
    // Both match: api runs later and its pools win; the header names it.
    assert_eq!(visit("/api/x", true), ("api-1".into(), "api".into()));
    // pinned terminates before beta is evaluated.
    assert_eq!(visit("/pinned", true), ("web-1".into(), "pinned".into()));
}

#[test]
fn a_rule_overrides_session_affinity_and_a_foreign_pin_is_repinned() {
    let web = Upstream::healthy("web-1");
    let apis: Vec<Upstream> = (1..=4)
        .map(|i| Upstream::healthy(&format!("api-{i}")))
        .collect();
    let proxy = tether()
        .listener(free_port())
        .decision_header()
        .load_balancer(
            "www.example.com",
            lb(["web"]).affinity(Affinity::Cookie).rule(
                rule("api", r#"starts_with(http.request.uri.path, "/api/")"#)
                    .terminates(true)
                    .overrides(Overrides {
                        default_pools: Some(vec!["api".into()]),
                        session_affinity: Some(Affinity::Header),
                        session_affinity_attributes: Some(Attributes {
                            headers: Some(vec!["Authorization".into()]),
                            ..Attributes::default()
                        }),
                        ..Overrides::default()
                    }),
            ),
        )
        .pool("web", pool([&web]))
        .pool(
            "api",
            pool(apis.iter()).origin_steering(OriginSteering::Random),
        )
        .start();
    let client = client();

    // Each Authorization value stays on one endpoint; several values spread.
    let mut seen = BTreeSet::new();
    for user in 0..8 {
        let token = format!("Bearer user-{user}");
        let mut first = None;
        for _ in 0..5 {
            let (status, headers, body) = get_h(
                &client,
                &proxy.url("/api/x"),
                &[("host", "www.example.com"), ("authorization", &token)],
            );
            assert_eq!(status, 200, "{body}");
            assert!(
                header(&headers, "set-cookie").is_none(),
                "header affinity sets no cookie"
            );
            let (decision, endpoint) = decision_of(&headers);
            match &first {
                None => {
                    assert_eq!(decision, "new");
                    first = Some(endpoint);
                }
                Some(e) => {
                    assert_eq!((decision.as_str(), &endpoint), ("hit", e), "{token}");
                }
            }
        }
        seen.extend(first);
    }
    assert!(
        seen.len() >= 2,
        "sessions spread over the api pool: {seen:?}"
    );

    // A session pinned under the load balancer's own settings (cookie, web)
    // that matches the api rule is routed by the rule: its pin names a pool
    // the rule does not use, so it is not honoured there.
    let (_, headers, body) = get(&client, &proxy.url("/"), "www.example.com");
    assert_eq!(body, "web-1");
    let cookie = header(&headers, "set-cookie").expect("a __cflb for the web session");
    let cookie = cookie.split(';').next().unwrap_or_default().to_string();
    let (_, headers, body) = get_h(
        &client,
        &proxy.url("/api/x"),
        &[
            ("host", "www.example.com"),
            ("cookie", &cookie),
            ("authorization", "t"),
        ],
    );
    assert!(body.starts_with("api-"), "{body}");
    assert_eq!(decision_of(&headers).0, "new");
    // Back on the load balancer's own paths the cookie still holds.
    let (_, headers, body) = get_h(
        &client,
        &proxy.url("/"),
        &[("host", "www.example.com"), ("cookie", &cookie)],
    );
    assert_eq!(
        (body.as_str(), decision_of(&headers).0.as_str()),
        ("web-1", "hit")
    );
}

#[test]
fn invalid_conditions_are_refused_with_their_path_and_column() {
    let web = Upstream::healthy("web-1");
    let (code, _, stderr) = tether()
        .listener(free_port())
        .load_balancer(
            "www.example.com",
            lb(["web"])
                .rule(rule("ok", r#"http.host eq "a""#))
                .rule(rule(
                    "bad",
                    r#"http.request.uri.path eq "/a" or ip.src contains "x""#,
                )),
        )
        .pool("web", pool([&web]))
        .check();
    assert_ne!(code, 0);
    assert!(
        stderr.contains(r#"tether.load_balancers["www.example.com"].rules[1].condition: invalid condition: column 50: contains applies to strings, not an IP address"#),
        "{stderr}"
    );
}

/// `n` parentheses around a condition that matches nothing.
fn nested(n: usize) -> String {
    format!("{}http.host eq \"none\"{}", "(".repeat(n), ")".repeat(n))
}

/// A condition nested deeper than 64 levels (or longer than 4,096 bytes) is a
/// config error with its key path wherever it enters: `tether -t`, a SIGHUP
/// reload (which once aborted the running server at ~1,000 levels) and an
/// admin change (~2,000 levels once aborted it too). The server keeps serving.
#[test]
fn deeply_nested_or_overlong_conditions_are_config_errors_not_crashes() {
    let web = Upstream::healthy("web-1");
    let (listen, admin) = (free_port(), free_port());
    let with_condition = |condition: &str| {
        tether()
            .listener(listen)
            .admin(admin)
            .load_balancer(
                "www.example.com",
                lb(["web"]).rule(rule("deep", condition).fixed_response(FixedResponse {
                    status_code: Some(403),
                    location: None,
                    content_type: None,
                    message_body: None,
                })),
            )
            .pool("web", pool([&web]))
    };
    let path = r#"tether.load_balancers["www.example.com"].rules[0].condition"#;
    for (condition, says) in [
        (nested(65), "nested deeper than 64 levels"),
        (nested(1_000), "nested deeper than 64 levels"),
        (
            format!("{}http.host eq \"a\"", "not ".repeat(500)),
            "nested deeper than 64 levels",
        ),
        // What aborted `tether -t` itself: now simply too long.
        (nested(3_700), "at most 4096 are allowed"),
        (
            format!("{}http.host eq \"a\"", "not ".repeat(21_800)),
            "at most 4096 are allowed",
        ),
        (
            format!("http.host eq \"{}\"", "a".repeat(5_000)),
            "at most 4096 are allowed",
        ),
    ] {
        let (code, _, stderr) = with_condition(&condition).check();
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{path}: invalid condition: column ")),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(
        with_condition(&nested(64)).check().0,
        0,
        "64 levels are allowed"
    );

    let mut proxy = with_condition(&nested(64)).start();
    let client = client();
    assert_eq!(get(&client, &proxy.url("/"), "www.example.com").0, 200);
    proxy.rewrite_config(&with_condition(&nested(1_000)).yaml());
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log(&format!("reload refused: {path}"), Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    assert!(
        proxy.is_running(),
        "the reload did not take the server down"
    );
    assert_eq!(get(&client, &proxy.url("/"), "www.example.com").0, 200);

    // An admin change nesting its JSON, or naming a deep rule, is a 400.
    for body in [
        format!(
            r#"{{"rules": [{{"name": "x", "condition": "{}"}}]}}"#,
            nested(2_000).replace('"', "\\\"")
        ),
        format!(
            r#"{{"session_affinity_attributes": {}1{}}}"#,
            "[".repeat(2_000),
            "]".repeat(2_000)
        ),
    ] {
        let (status, answer) = api::patch(&proxy, "/v1/load_balancers/www.example.com", &body);
        assert_eq!(status, 400, "{answer}");
    }
    assert!(
        proxy.is_running(),
        "the admin change did not take the server down"
    );
    assert_eq!(get(&client, &proxy.url("/"), "www.example.com").0, 200);
}

/// Sends `request` as it is on a new connection (no client library to
/// normalise its target); what came back before the proxy closed it.
fn raw_exchange(proxy: &TetherProc, request: &str) -> String {
    exchange_raw(proxy.addr(), request.as_bytes())
}

/// Rules match the normalised path (Cloudflare's URL normalization), so the
/// usual ways around a path rule are caught; the endpoint still gets the
/// path as sent.
#[test]
fn rules_see_the_normalised_path_and_the_endpoint_the_path_as_sent() {
    let web = Upstream::healthy("web-1");
    let api = Upstream::healthy("api-1");
    let proxy = tether()
        .listener(free_port())
        .load_balancer(
            "www.example.com",
            lb(["web"])
                .rule(
                    rule("admin", r#"starts_with(http.request.uri.path, "/admin")"#)
                        .fixed_response(FixedResponse {
                            status_code: Some(403),
                            location: None,
                            content_type: None,
                            message_body: Some("no".into()),
                        }),
                )
                .rule(
                    rule("api", r#"starts_with(http.request.uri.path, "/echo/api/")"#)
                        .overrides(Overrides::pools(["api"])),
                ),
        )
        .pool("web", pool([&web]))
        .pool("api", pool([&api]))
        .start();
    let send = |target: &str| {
        raw_exchange(
            &proxy,
            &format!("GET {target} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"),
        )
    };
    for target in [
        "/admin",
        "/%61dmin",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/%2e%2e/admin/x",
        "/a/b/../../../admin",
    ] {
        let answer = send(target);
        assert!(answer.starts_with("HTTP/1.1 403 "), "{target}: {answer}");
    }
    assert_eq!(
        web.requests() + api.requests(),
        0,
        "none reached an endpoint"
    );
    // Not the admin path (a reserved %2F is not decoded): forwarded.
    let answer = send("/%2Fadmin");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // The api rule matches the normalised path; the endpoint gets it as sent.
    let target = "/echo/%61pi/./x//y/../z?q=/../%61";
    let answer = send(target);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let echo: serde_json::Value = serde_json::from_str(body).expect("the echo's JSON");
    assert_eq!(echo["upstream"], "api-1", "{echo}");
    assert_eq!(echo["path"], target, "{echo}");
}

/// A fixed response is framed as HTTP says: 204 (and 304) without
/// `Content-Length` or body, a `HEAD` with the length a `GET` gets and no
/// body bytes, so the kept-alive connection stays in step; a 1xx status or a
/// body for a 204 is a config error under its key path.
#[test]
fn fixed_responses_are_framed_for_204_and_head_and_1xx_is_refused() {
    let web = Upstream::healthy("web-1");
    let fixed = |status_code: u16, message_body: Option<&str>| FixedResponse {
        status_code: Some(status_code),
        location: None,
        content_type: None,
        message_body: message_body.map(str::to_string),
    };
    let with = |empty: FixedResponse| {
        tether()
            .listener(free_port())
            .load_balancer(
                "www.example.com",
                lb(["web"])
                    .rule(
                        rule("hello", r#"http.request.uri.path eq "/hello""#)
                            .fixed_response(fixed(200, Some("hello world"))),
                    )
                    .rule(
                        rule("empty", r#"http.request.uri.path eq "/empty""#).fixed_response(empty),
                    ),
            )
            .pool("web", pool([&web]))
    };
    let proxy = with(fixed(204, None)).start();
    let all = raw_exchange(
        &proxy,
        "HEAD /hello HTTP/1.1\r\nHost: www.example.com\r\n\r\n\
         GET /empty HTTP/1.1\r\nHost: www.example.com\r\n\r\n\
         GET /hello HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    );
    let answers: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{all}");
    let lower: Vec<String> = answers.iter().map(|a| a.to_ascii_lowercase()).collect();
    assert!(
        lower[0].starts_with("200 ")
            && lower[0].contains("content-length: 11\r\n")
            && lower[0].ends_with("\r\n\r\n"),
        "HEAD: the GET's length, no body: {all}"
    );
    assert!(
        lower[1].starts_with("204 ")
            && !lower[1].contains("content-length")
            && lower[1].ends_with("\r\n\r\n"),
        "204: no length, no body: {all}"
    );
    assert!(
        lower[2].starts_with("200 ") && lower[2].ends_with("\r\n\r\nhello world"),
        "{all}"
    );
    assert!(
        !proxy.logs().contains("over content-length"),
        "{}",
        proxy.logs()
    );

    let at = r#"tether.load_balancers["www.example.com"].rules[1].fixed_response"#;
    for (empty, says) in [
        (
            fixed(101, None),
            format!("{at}.status_code: must be between 200 and 599, got 101"),
        ),
        (
            fixed(204, Some("not sent")),
            format!("{at}.message_body: a 204 response has no body"),
        ),
    ] {
        let (code, _, stderr) = with(empty).check();
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(&says), "{says} in:\n{stderr}");
    }
}
