//! The state file through the real binary (SPEC 8, issue 8): it records only
//! the fields changed at run time, each with the file value it replaced; a
//! later edit of that field in the YAML wins at start and keeps the other
//! changes; a change that cannot be written is refused with `500` and
//! changes nothing.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::api::{get, ok, patch, refused};
use support::*;

/// `balancer` as the load balancer `*` over pool `p` (endpoints a and b), an
/// admin listener, the state file at `state_file`.
fn cfg(a: &Upstream, b: &Upstream, state_file: &Path, balancer: LoadBalancer) -> Tether {
    tether()
        .listener(free_port())
        .admin(free_port())
        .state_file(state_file)
        .load_balancer("*", balancer)
        .pool("p", pool([a, b]))
}

fn on_disk(state_file: &Path) -> Value {
    let text = std::fs::read_to_string(state_file).expect("the state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

#[test]
fn the_state_file_records_only_changed_fields_with_the_file_value() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let proxy = cfg(&a, &b, &state_file, lb(["p"]).affinity(Affinity::Cookie)).start();
    ok(patch(
        &proxy,
        "/v1/load_balancers/*",
        r#"{"session_affinity_attributes": {"drain_duration": 30}}"#,
    ));
    ok(patch(
        &proxy,
        "/v1/pools/p/endpoints/b",
        r#"{"weight": 0.5}"#,
    ));
    let file = on_disk(&state_file);
    assert_eq!(
        file["load_balancers"],
        json!({"*": {"session_affinity_attributes.drain_duration": {"value": 30, "file": 0}}}),
        "one field, never a copy of the whole load balancer: {file:#}"
    );
    assert_eq!(
        file["endpoints"],
        json!({"p": {"b": {"weight": {"value": 0.5, "file": 1.0}}}})
    );
    // Setting the file's value back removes the record.
    ok(patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 1}"#));
    assert_eq!(on_disk(&state_file)["endpoints"], json!({}));
}

#[test]
fn a_yaml_edit_after_a_patch_wins_for_that_field_and_keeps_the_other_overrides() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let mut proxy = cfg(&a, &b, &state_file, lb(["p"]).affinity(Affinity::Cookie)).start();
    ok(patch(
        &proxy,
        "/v1/load_balancers/*",
        r#"{"session_affinity_ttl": 7200, "session_affinity_attributes": {"drain_duration": 30, "zero_downtime_failover": "sticky"}}"#,
    ));
    ok(patch(
        &proxy,
        "/v1/pools/p/endpoints/b",
        r#"{"weight": 0.25}"#,
    ));
    proxy.terminate();

    // The operator now sets the drain duration in the file.
    let edited = lb(["p"]).affinity(Affinity::Cookie).drain(5);
    let proxy = cfg(&a, &b, &state_file, edited).start();
    let lb = ok(get(&proxy, "/v1/load_balancers/*"));
    let attrs = &lb["session_affinity_attributes"];
    assert_eq!(attrs["drain_duration"], 5, "the file's edit wins: {lb:#}");
    assert_eq!(attrs["zero_downtime_failover"], "sticky", "{lb:#}");
    assert_eq!(lb["session_affinity_ttl"], 7200, "{lb:#}");
    assert_eq!(ok(get(&proxy, "/v1/pools/p/endpoints/b"))["weight"], 0.25);
    let said = proxy.log_lines(
        "session_affinity_attributes.drain_duration: the configuration file changed it from 0 to 5",
    );
    assert_eq!(said.len(), 1, "one log line says so:\n{}", proxy.logs());
    let records = &on_disk(&state_file)["load_balancers"]["*"];
    assert!(
        records
            .get("session_affinity_attributes.drain_duration")
            .is_none()
            && records.get("session_affinity_ttl").is_some(),
        "the dropped record left the file, the others stayed: {records:#}"
    );
}

#[test]
fn a_change_that_cannot_be_written_is_refused_with_500_and_changes_nothing() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let proxy = cfg(&a, &b, &state_file, lb(["p"])).start();
    // The file cannot be replaced any more: a directory stands in its place.
    std::fs::create_dir_all(state_file.join("blocker")).unwrap();

    let answer = patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"enabled": false}"#);
    let messages = refused(answer, 500);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("the change was not applied: cannot write the state file"),
        "{messages:?}"
    );
    assert_eq!(ok(get(&proxy, "/v1/pools/p/endpoints/b"))["enabled"], true);
    let answer = patch(&proxy, "/v1/load_balancers/*", r#"{"enabled": false}"#);
    refused(answer, 500);
    assert_eq!(ok(get(&proxy, "/v1/load_balancers/*"))["enabled"], true);
    // Traffic still reaches b: nothing was applied.
    let c = client();
    let reached_b = (0..40).any(|_| {
        let (status, headers, _) = support::get(&c, &proxy.url("/"), "example.com");
        status == 200 && upstream_of(&headers).as_deref() == Some("b")
    });
    assert!(reached_b, "b still serves");
}

#[test]
fn tether_t_refuses_a_state_file_it_could_not_write() {
    let (code, out, err) = tether()
        .listener(1)
        .state_file(Path::new("/proc/tether-state.json"))
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([Endpoint::at("a", "127.0.0.1:2")]))
        .check();
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(r#"tether.state_file: directory "/proc" is not writable"#),
        "{err}"
    );
}
