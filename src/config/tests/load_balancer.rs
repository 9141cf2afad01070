//! `tether.load_balancers`, and one load balancer alone (the admin API's).

use super::*;
use crate::config::*;
use serde_yaml::Value;

#[test]
fn ttl_defaults_depend_on_the_affinity_type() {
    for (affinity, ttl) in [
        ("cookie", 82_800),
        ("ip_cookie", 82_800),
        (
            "header\nsession_affinity_attributes: { headers: [X-User] }",
            1800,
        ),
        ("source_ip", 1800),
        ("none", 0),
        ("\"\"", 0),
    ] {
        let t = ok(&with_lb(&format!("session_affinity: {affinity}"))).tether;
        assert_eq!(
            t.load_balancers["*"].session_affinity_ttl.as_secs(),
            ttl,
            "{affinity}"
        );
    }
    // Given with none: kept as written, at most what any type allows.
    let t = ok(&with_lb("session_affinity_ttl: 5")).tether;
    assert_eq!(t.load_balancers["*"].session_affinity_ttl.as_secs(), 5);
    // Too large (past i64 too): the error names the type's range.
    for (affinity, range) in [
        ("cookie", "1800 and 604800 for session_affinity cookie"),
        ("source_ip", "30 and 3600 for session_affinity source_ip"),
        ("none", "0 and 604800"),
    ] {
        for ttl in ["604801", "9223372036854775808", "1.0e+30", "-1"] {
            let e = errors(&with_lb(&format!(
                "session_affinity: {affinity}\nsession_affinity_ttl: {ttl}"
            )));
            let want = format!(
                r#"tether.load_balancers["*"].session_affinity_ttl: must be between {range}, got "#
            );
            assert!(
                e.len() == 1 && e[0].starts_with(&want),
                "{affinity} {ttl}: {e:?}"
            );
        }
    }
    let t = ok(&with_lb(
        "session_affinity: source_ip\nsession_affinity_ttl: 30",
    ))
    .tether;
    assert_eq!(t.load_balancers["*"].session_affinity_ttl.as_secs(), 30);
}

#[test]
fn quoted_keys_in_paths() {
    let yaml = MINIMAL.replace(
            "    \"*\":\n      default_pools: [primary]\n",
            "    www.example.com:\n      default_pools: [primary, secndary]\n    \"*\":\n      enabled: maybe\n      default_pools: [primary]\n    \"bad host:80\":\n      default_pools: [primary]\n",
        );
    assert_eq!(
        errors(&yaml),
        vec![
            r#"tether.load_balancers["www.example.com"].default_pools[1]: no pool named "secndary""#,
            r#"tether.load_balancers["*"].enabled: expected a boolean, got a string ("maybe")"#,
            r#"tether.load_balancers["bad host:80"]: a load balancer's name must be "*" or a host name (letters, digits, "-" and "."; no port), got "bad host:80""#,
        ]
    );
    let yaml = MINIMAL.replace(
        "    \"*\":\n",
        "    Example.com:\n      default_pools: [primary]\n    example.COM:\n",
    );
    assert_eq!(
        errors(&yaml),
        vec![
            r#"tether.load_balancers["example.COM"]: duplicate load balancer "example.com" (host names are case-insensitive; also load_balancers["Example.com"])"#
        ]
    );
}

#[test]
fn samesite_none_needs_secure() {
    let e = errors(&with_lb(
        "session_affinity: cookie\nsession_affinity_attributes: { samesite: None, secure: Never }",
    ));
    assert_eq!(
        e,
        vec![
            r#"tether.load_balancers["*"].session_affinity_attributes.secure: must not be Never when samesite is None (browsers reject SameSite=None without Secure)"#
        ]
    );
    let e = errors(&with_lb(
            "session_affinity: cookie\nalways_use_https: true\nsession_affinity_attributes: { secure: Never }",
        ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("secure: must not be Never when samesite is Auto"),
        "{e:?}"
    );
    ok(&with_lb(
        "session_affinity: cookie\nsession_affinity_attributes: { samesite: Lax, secure: Never }",
    ));
    ok(&with_lb(
        "session_affinity: cookie\nsession_affinity_attributes: { samesite: None, secure: Auto }",
    ));
    let e = errors(&with_lb("session_affinity_attributes: { samesite: lax }"));
    assert_eq!(
        e,
        vec![
            r#"tether.load_balancers["*"].session_affinity_attributes.samesite: must be one of Auto, Lax, Strict, None; got "lax""#
        ]
    );
}

#[test]
fn header_affinity_needs_headers() {
    let msg = r#"tether.load_balancers["*"].session_affinity_attributes.headers: must name at least one header when session_affinity is header"#;
    assert_eq!(errors(&with_lb("session_affinity: header")), vec![msg]);
    assert_eq!(
        errors(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { drain_duration: 5 }"
        )),
        vec![msg]
    );
    assert_eq!(
        errors(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { headers: [] }"
        )),
        vec![msg]
    );
    let t = ok(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { headers: [X-User, cookie, \"cookie:a,b\"] }",
        ))
        .tether;
    assert_eq!(
        t.load_balancers["*"].session_affinity_attributes.headers,
        vec!["X-User", "cookie", "cookie:a,b"]
    );
    let e = errors(&with_lb(
            "session_affinity: header\nsession_affinity_attributes: { headers: [\"X User\", \"cookie:\", \"cookie:a,,b\"] }",
        ));
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(
        e[0],
        r#"tether.load_balancers["*"].session_affinity_attributes.headers[0]: must be a header name, "cookie" or "cookie:<name>[,<name>...]", got "X User""#
    );
    let e = errors(&with_lb("session_affinity: header\nsession_affinity_ttl: 10\nsession_affinity_attributes: { headers: [X-User] }"));
    assert_eq!(
        e,
        vec![
            r#"tether.load_balancers["*"].session_affinity_ttl: must be between 30 and 3600 for session_affinity header, got 10"#
        ]
    );
}

#[test]
fn one_load_balancer_validated_alone() {
    let t = ok(&with_lb(
            "session_affinity: cookie\nfallback_pool: primary\nrandom_steering: { pool_weights: { primary: 0.5 } }\nsession_affinity_attributes: { headers: [X-A] }",
        ))
        .tether;
    let lb = &t.load_balancers["*"];
    // Round trip: the value written back validates to the same thing.
    let value = load_balancer_to_value(lb);
    let again =
        load_balancer_from_value("*", &value, &t.pools, "tether.load_balancers[\"*\"]").unwrap();
    assert_eq!(&again, lb);

    // A change validated as the file is.
    let mut changed = value.clone();
    changed["session_affinity"] = Value::from("header");
    changed["session_affinity_ttl"] = Value::from(10);
    changed["default_pools"] = Value::from(vec!["primary", "gone"]);
    let e = load_balancer_from_value("Www.Example.com", &changed, &t.pools, "")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        [
            r#"default_pools[1]: no pool named "gone""#,
            "session_affinity_ttl: must be between 30 and 3600 for session_affinity header, got 10",
        ]
        .join("\n")
    );
    let lb = load_balancer_from_value("Www.Example.com", &value, &t.pools, "").unwrap();
    assert_eq!(lb.name, "www.example.com");
}

#[test]
fn rules_read_with_cloudflare_defaults_and_round_trip() {
    let yaml = with_lb(
        r#"session_affinity: cookie
rules:
  - name: api
    condition: 'starts_with(http.request.uri.path, "/api/")'
    priority: 10
    terminates: true
    overrides: { default_pools: [primary], session_affinity: header, session_affinity_attributes: { headers: [Authorization] } }
  - name: moved
    condition: 'http.request.uri.path eq "/old"'
    fixed_response: { status_code: 301, location: "https://www.example.com/new", message_body: moved }"#,
    );
    let t = ok(&yaml).tether;
    let lb = &t.load_balancers["*"];
    assert_eq!(lb.rules.len(), 2);
    let api = &lb.rules[0];
    assert_eq!(
        (api.priority, api.terminates, api.disabled),
        (10, true, false)
    );
    let moved = &lb.rules[1];
    // A fixed response terminates; content_type defaults to text/plain.
    assert!(moved.terminates);
    let fixed = moved.fixed_response.as_ref().unwrap();
    assert_eq!(
        (fixed.status_code, fixed.content_type.as_str()),
        (301, "text/plain")
    );
    // The overrides make a header-affinity load balancer whose TTL defaults
    // for header (1800 s), not the cookie's.
    let over = apply_overrides(lb, &[&api.overrides]).unwrap();
    assert_eq!(over.session_affinity, SessionAffinity::Header);
    assert_eq!(over.session_affinity_ttl.as_secs(), 1800);
    assert!(over.rules.is_empty());
    // The admin API's round trip keeps the rules.
    let back = load_balancer_from_value(
        "*",
        &load_balancer_to_value(lb),
        &ok(&yaml).tether.pools,
        "",
    )
    .unwrap();
    assert_eq!(&back, lb);
}

#[test]
fn rule_errors_name_their_path_and_column() {
    let yaml = with_lb(
        r#"rules:
  - name: a
    condition: 'http.request.uri.path eq "/a" and'
  - name: a
    priority: 1
    overrides: { default_pools: [nope], enabled: false }
  - name: "bad name"
    fixed_response: { status_code: 999 }
    overrides: { steering_policy: random }
  - name: c
    priority: -1
    overrides: { session_affinity: header }"#,
    );
    assert_eq!(
        errors(&yaml),
        vec![
            r#"tether.load_balancers["*"].rules[0].condition: invalid condition: column 34: expected a field, a function, not, or ("#,
            r#"tether.load_balancers["*"].rules[1]: duplicate rule name "a" (also rules[0])"#,
            r#"tether.load_balancers["*"].rules[1].overrides.enabled: unknown key (expected one of: default_pools, fallback_pool, steering_policy, random_steering, session_affinity, session_affinity_ttl, session_affinity_attributes, adaptive_routing)"#,
            r#"tether.load_balancers["*"].rules[1].overrides.default_pools[0]: no pool named "nope""#,
            r#"tether.load_balancers["*"].rules[2].name: a rule name must use only letters, digits, "_", "." and "-", got "bad name""#,
            r#"tether.load_balancers["*"].rules[2].fixed_response: a rule either answers (fixed_response) or routes (overrides), not both"#,
            r#"tether.load_balancers["*"].rules[2].fixed_response.status_code: must be between 200 and 599, got 999"#,
            r#"tether.load_balancers["*"].rules[3].priority: must be between 0 and 4294967295, got -1"#,
            r#"tether.load_balancers["*"].rules[3].overrides.session_affinity_attributes.headers: must name at least one header when session_affinity is header"#,
        ]
    );
}

#[test]
fn fixed_responses_are_final_and_bodiless_statuses_have_no_body() {
    let yaml = with_lb(
        r#"rules:
  - name: switch
    fixed_response: { status_code: 101 }
  - name: early
    fixed_response: { status_code: 103, message_body: hints }
  - name: empty
    fixed_response: { status_code: 204, message_body: "not sent" }
  - name: same
    fixed_response: { status_code: 304, message_body: x }"#,
    );
    assert_eq!(
        errors(&yaml),
        vec![
            r#"tether.load_balancers["*"].rules[0].fixed_response.status_code: must be between 200 and 599, got 101"#,
            r#"tether.load_balancers["*"].rules[1].fixed_response.status_code: must be between 200 and 599, got 103"#,
            r#"tether.load_balancers["*"].rules[2].fixed_response.message_body: a 204 response has no body: remove message_body or use another status_code"#,
            r#"tether.load_balancers["*"].rules[3].fixed_response.message_body: a 304 response has no body: remove message_body or use another status_code"#,
        ]
    );
    // Without a body (or with an empty one) they are fine; so are 200 and 599.
    let yaml = with_lb(
        r#"rules:
  - name: empty
    fixed_response: { status_code: 204 }
  - name: same
    fixed_response: { status_code: 304, message_body: "" }
  - name: low
    fixed_response: { status_code: 200, message_body: ok }
  - name: high
    fixed_response: { status_code: 599 }"#,
    );
    assert_eq!(ok(&yaml).tether.load_balancers["*"].rules.len(), 4);
}

#[test]
fn a_runtime_change_that_breaks_a_rules_overrides_is_refused() {
    let yaml = with_lb(
        r#"session_affinity: cookie
session_affinity_attributes: { headers: [X-User] }
rules:
  - name: api
    overrides: { session_affinity: header }"#,
    );
    let loaded = ok(&yaml).tether;
    let lb = &loaded.load_balancers["*"];
    // What the admin API's PATCH does: the load balancer as a value, a key
    // changed, validated again (rules included).
    let mut value = load_balancer_to_value(lb);
    value["session_affinity_attributes"]["headers"] = Value::Sequence(vec![]);
    let errs = load_balancer_from_value("*", &value, &loaded.pools, "")
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>();
    assert_eq!(
        errs,
        ["rules[0].overrides.session_affinity_attributes.headers: must name at least one header when session_affinity is header"]
    );
}
