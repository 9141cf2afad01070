use super::*;
use http::HeaderMap;

fn rule(name: &str, condition: &str, priority: u32) -> config::Rule {
    config::Rule {
        name: name.into(),
        condition: condition.into(),
        priority,
        disabled: false,
        terminates: false,
        overrides: serde_yaml::from_str("{ steering_policy: random }").unwrap(),
        fixed_response: None,
    }
}

fn outcome(rules: &Rules, path: &str) -> (Option<String>, u64, bool) {
    let h = HeaderMap::new();
    let req = Request {
        host: "a.example",
        uri: path,
        method: "GET",
        headers: &h,
        client: None,
        tls: false,
    };
    match rules.evaluate(&req) {
        Outcome::None => (None, 0, false),
        Outcome::Fixed(r, _) => (Some(r.name.to_string()), 0, true),
        Outcome::Routed { overrides, last } => (Some(last.name.to_string()), overrides, false),
    }
}

#[test]
fn priority_terminates_disabled_and_fixed_responses() {
    let mut a = rule("a", r#"starts_with(http.request.uri.path, "/api/")"#, 10);
    let b = rule("b", r#"http.request.uri.path contains "v2""#, 5);
    let mut c = rule("c", r#"http.request.uri.path eq "/old""#, 0);
    c.overrides = Default::default();
    c.fixed_response = Some(config::FixedResponse {
        status_code: 301,
        location: Some("https://www.example.com/new".into()),
        content_type: "text/plain".into(),
        message_body: "moved".into(),
    });
    let mut d = rule("d", r#"http.request.uri.path eq "/api/off""#, 0);
    d.disabled = true;
    let rules = Rules::compile("lb", &[a.clone(), b.clone(), c.clone(), d.clone()]);
    // Order: c (0), b (5), a (10); d left out.
    let names: Vec<&str> = rules.list.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert_eq!(outcome(&rules, "/old"), (Some("c".into()), 0, true));
    assert_eq!(outcome(&rules, "/nothing"), (None, 0, false));
    // Non-terminating: both apply, the later (a) last.
    assert_eq!(outcome(&rules, "/api/v2"), (Some("a".into()), 0b11, false));
    assert_eq!(outcome(&rules, "/api/off"), (Some("a".into()), 0b01, false));
    // b terminates: a is not evaluated.
    let mut bt = b;
    bt.terminates = true;
    a.priority = 10;
    let rules = Rules::compile("lb", &[a, bt, c, d]);
    assert_eq!(outcome(&rules, "/api/v2"), (Some("b".into()), 0b10, false));
}

#[test]
fn equal_priorities_keep_file_order() {
    let rules = Rules::compile(
        "lb",
        &[rule("x", "", 1), rule("y", "", 1), rule("z", "", 0)],
    );
    let names: Vec<&str> = rules.list.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["z", "x", "y"]);
}
