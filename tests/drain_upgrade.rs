//! Issue "production operations", done-when: a drain started over the admin
//! API survives a hot upgrade and ends on time — the new process learns the
//! drain's start from the state file, keeps pinned sessions on the draining
//! endpoint for the rest of the window, sends no new session there, and
//! re-pins them once the window is over.
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::cflb::{keys_file, mint, unix_now};
use support::*;

const KEY: &[u8] = b"drain-upgrade key, 32 bytes long";
const DRAIN: u64 = 12;

/// (decision, endpoint) of a GET with the cookie.
fn visit(proxy: &TetherProc, cookie: Option<&str>) -> (String, String) {
    let (status, endpoint, decision, _) = visit_as(&client(), proxy, "x", cookie);
    assert_eq!(status, 200, "{endpoint}");
    (decision, endpoint)
}

/// `seconds_left` of endpoint `a`'s drain in `GET /v1/pools/p`, if draining.
fn seconds_left(proxy: &TetherProc) -> Option<f64> {
    let (status, _, body) = get(
        &client(),
        &proxy.admin_url("/v1/pools/p"),
        &proxy.admin_host(),
    );
    assert_eq!(status, 200, "{body}");
    let pool: serde_json::Value = serde_json::from_str(&body).unwrap();
    let a = pool["result"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "a")
        .cloned()
        .unwrap();
    a["draining"].as_array()?.first()?["seconds_left"].as_f64()
}

#[test]
fn a_drain_started_over_the_api_survives_a_hot_upgrade_and_ends_on_time() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let state = dir.path().join("state.json");
    let mut old = tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .cookie_keys_file(&keys)
        .state_file(&state)
        .load_balancer("*", lb(["p"]).affinity(Affinity::Cookie).drain(DRAIN))
        .pool("p", pool([&a, &b]))
        .builder()
        .grace(1, 1)
        .start();
    let on_a = mint(KEY, "*", "p", "a", unix_now() + 3600);
    assert_eq!(visit(&old, Some(&on_a)), ("hit".into(), "a".into()));

    // Disable `a` over the API: its drain starts now.
    let started = Instant::now();
    let (status, _, body) = send(
        &client(),
        reqwest::Method::PATCH,
        &old.admin_url("/v1/pools/p/endpoints/a"),
        &[("content-type", "application/json")],
        r#"{"enabled": false}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(state.exists(), "the change is in the state file");

    // Hot upgrade to the same configuration.
    let new = old.upgrade(None);
    let upgraded_after = started.elapsed();
    assert!(
        upgraded_after < Duration::from_secs(DRAIN - 3),
        "the upgrade took {upgraded_after:?}; too long to observe the drain"
    );

    // The new process continues the drain where it was, not from its own start.
    let left = seconds_left(&new).expect("still draining after the upgrade");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        left <= DRAIN as f64 - elapsed + 1.0 && left >= 1.0,
        "{left} s left, {elapsed:.1} s after the drain started"
    );
    assert_eq!(visit(&new, Some(&on_a)), ("hit".into(), "a".into()));
    for _ in 0..10 {
        let (decision, endpoint) = visit(&new, None);
        assert_eq!((decision.as_str(), endpoint.as_str()), ("new", "b"));
    }

    // The drain ends on time: not before its window, and soon after it.
    let mut last = (String::new(), String::new());
    let moved = wait_until(Duration::from_secs(DRAIN + 5), || {
        last = visit(&new, Some(&on_a));
        last.0 == "repin_drained"
    });
    let ended = started.elapsed();
    assert!(moved, "still {last:?} {ended:?} after the drain started");
    assert_eq!(last.1, "b");
    assert!(
        ended >= Duration::from_millis(DRAIN * 1000 - 1000),
        "the drain ended early: {ended:?} < {DRAIN} s"
    );
    assert_eq!(seconds_left(&new), None);
}
