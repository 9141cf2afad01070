//! Objects created, replaced and deleted at run time (issue 21, item 2),
//! through the native admin API: a monitor, a pool and a load balancer put
//! at run time serve at once, are in the state file before they apply, and
//! survive a restart and a reload; a file object cannot be deleted (409
//! naming the file), nor one still referenced (409 naming who refers to
//! it); with a cluster, the objects reach the other replica and serve there,
//! one too large to share is refused (413), and a delete takes its parts'
//! stored changes out of Redis; a put does not check the other objects again
//! (a CA file removed since the start refuses nothing).

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::api::{admin, get, ok, refused};
use support::redis::Redis;
use support::*;

const HOST: &str = "new.example";
const WAIT: Duration = Duration::from_secs(10);

fn put(proxy: &TetherProc, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, v) = admin(proxy, Method::PUT, path, &body.to_string(), None);
    (status, v)
}

fn delete(proxy: &TetherProc, path: &str) -> (u16, Value) {
    let (status, _, v) = admin(proxy, Method::DELETE, path, "", None);
    (status, v)
}

/// The file: load balancer `*` over pool `p` (endpoint `a`).
fn file(a: &Upstream, state_file: Option<&Path>) -> Tether {
    let t = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([a]));
    match state_file {
        Some(path) => t.state_file(path),
        None => t,
    }
}

/// A monitor `m2`, a pool `q` on `c` watched by it, and the load balancer
/// `new.example` over `q` (falling back to the file's `p`), put in that order.
fn put_objects(proxy: &TetherProc, c: &Upstream) {
    ok(put(
        proxy,
        "/v1/monitors/m2",
        &json!({"type": "http", "path": "/health", "interval": 0.2, "timeout": 0.2, "retries": 0}),
    ));
    let pool = ok(put(
        proxy,
        "/v1/pools/q",
        &json!({"monitor": "m2", "endpoints": [{"name": "c", "address": c.addr().to_string()}]}),
    ));
    assert_eq!(pool["origin"], "runtime", "{pool}");
    assert_eq!(pool["id"].as_str().unwrap().len(), 32, "{pool}");
    ok(put(
        proxy,
        &format!("/v1/load_balancers/{HOST}"),
        &json!({"default_pools": ["q"], "fallback_pool": "p"}),
    ));
}

/// Which upstream answers `GET /` for `host` (polled until one does).
fn served_by(proxy: &TetherProc, host: &str) -> String {
    let client = client();
    let mut last = String::new();
    wait_until(WAIT, || {
        let (status, h, body) = support::get(&client, &proxy.url("/"), host);
        last = upstream_of(&h).unwrap_or_else(|| format!("{status} {body}"));
        status == 200
    });
    last
}

fn on_disk(state_file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state_file).expect("the state file"))
        .expect("JSON")
}

#[test]
fn objects_put_at_run_time_serve_and_survive_a_restart_and_a_reload() {
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let conf = file(&a, Some(&state_file));
    let mut proxy = conf.start();
    assert_eq!(served_by(&proxy, HOST), "a", "the catch-all before");
    put_objects(&proxy, &c);
    assert_eq!(served_by(&proxy, HOST), "c", "at once");
    // The run-time monitor watches the run-time pool: c down, the fallback serves.
    c.set_healthy(false);
    assert!(
        wait_until(WAIT, || served_by(&proxy, HOST) == "a"),
        "{}",
        proxy.logs()
    );
    c.set_healthy(true);
    assert!(wait_until(WAIT, || served_by(&proxy, HOST) == "c"));

    let held = on_disk(&state_file);
    assert_eq!(held["version"], 3, "{held:#}");
    assert_eq!(
        held["objects"]["pool"]["q"]["value"]["monitor"], "m2",
        "{held:#}"
    );
    assert_eq!(
        held["objects"]["load_balancer"][HOST]["value"]["default_pools"],
        json!(["q"]),
        "{held:#}"
    );

    // GET shows file and run-time objects alike, with where each came from.
    let pools = ok(get(&proxy, "/v1/objects/pools"));
    let origins: Vec<(String, String, Value)> = pools
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["origin"].as_str().unwrap().to_string(),
                p["file"].clone(),
            )
        })
        .collect();
    let config_path = std::fs::canonicalize(proxy.config_path()).unwrap();
    assert_eq!(
        origins,
        vec![
            (
                "p".to_string(),
                "file".to_string(),
                json!(config_path.to_str().unwrap())
            ),
            ("q".to_string(), "runtime".to_string(), Value::Null),
        ]
    );
    let ids: Vec<String> = pools
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();

    // A restart: the same objects, the same IDs.
    proxy.terminate();
    let mut proxy = conf.start();
    assert_eq!(
        served_by(&proxy, HOST),
        "c",
        "after a restart\n{}",
        proxy.logs()
    );
    let again: Vec<String> = ok(get(&proxy, "/v1/objects/pools"))
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(again, ids, "IDs are stable across restarts");

    // A reload (SIGHUP) of the same file: still there.
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", WAIT),
        "{}",
        proxy.logs()
    );
    assert_eq!(served_by(&proxy, HOST), "c", "after a reload");
    assert!(ok(get(&proxy, "/v1/monitors/m2"))["origin"] == "runtime");
    proxy.terminate();
}

#[test]
fn deletes_of_file_objects_and_of_referenced_ones_are_refused() {
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let mut proxy = file(&a, Some(&state_file)).start();
    put_objects(&proxy, &c);

    let config_path = std::fs::canonicalize(proxy.config_path()).unwrap();
    let why = refused(delete(&proxy, "/v1/pools/p"), 409);
    assert!(
        why[0].contains(config_path.to_str().unwrap()),
        "names the file: {why:?}"
    );
    let why = refused(delete(&proxy, "/v1/pools/q"), 409);
    assert!(why[0].contains(HOST), "names who refers to it: {why:?}");
    let why = refused(delete(&proxy, "/v1/monitors/m2"), 409);
    assert!(why[0].contains("tether.pools.q.monitor"), "{why:?}");
    refused(delete(&proxy, "/v1/pools/nope"), 404);
    // An invalid object is a 400 naming the key, and changes nothing.
    let why = refused(
        put(
            &proxy,
            "/v1/pools/r",
            &json!({"endpoints": [{"name": "x"}]}),
        ),
        400,
    );
    assert!(
        why.iter()
            .any(|m| m.contains("tether.pools.r.endpoints[0]")),
        "{why:?}"
    );
    assert_eq!(get(&proxy, "/v1/pools/r").0, 404);

    // In order, they go, and the host falls back to the catch-all.
    ok(delete(&proxy, &format!("/v1/load_balancers/{HOST}")));
    ok(delete(&proxy, "/v1/pools/q"));
    ok(delete(&proxy, "/v1/monitors/m2"));
    assert_eq!(served_by(&proxy, HOST), "a");
    assert!(on_disk(&state_file).get("objects").is_none());
    proxy.terminate();
}

#[test]
fn a_file_object_replaced_at_run_time_keeps_the_keys_the_file_has_not_changed_since() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let conf = file(&a, Some(&state_file));
    let mut proxy = conf.start();
    // Replace p: its endpoint is now b, and it takes a slow start.
    let mut p = ok(get(&proxy, "/v1/objects/pools"))[0]["value"].clone();
    p["endpoints"] = json!([{"name": "b", "address": b.addr().to_string()}]);
    p["slow_start"] = json!(5);
    let view = ok(put(&proxy, "/v1/pools/p", &p));
    assert_eq!(view["origin"], "file");
    assert_eq!(served_by(&proxy, "x"), "b");
    // The file now sets the slow start (its edit wins), not the endpoints.
    proxy.rewrite_config(&conf.clone().pool("p", pool([&a]).slow_start(10)).yaml());
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", WAIT),
        "{}",
        proxy.logs()
    );
    let p = ok(get(&proxy, "/v1/objects/pools"))[0]["value"].clone();
    assert_eq!(p["slow_start"], 10, "{p}");
    assert_eq!(p["endpoints"][0]["name"], "b", "{p}");
    assert_eq!(served_by(&proxy, "x"), "b");
    proxy.terminate();
}

#[test]
fn with_a_cluster_an_object_put_on_one_replica_serves_on_the_other() {
    let redis = Redis::start();
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    let confs: Vec<Tether> = (0..2)
        .map(|_| file(&a, None).cluster(&redis.url(), "objects", &key))
        .collect();
    let mut first = confs[0].start();
    let mut second = confs[1].start();
    for p in [&first, &second] {
        support::api::wait_for_link(p, true, 0, WAIT);
    }
    put_objects(&first, &c);
    assert_eq!(served_by(&first, HOST), "c");
    let mut seen = String::new();
    let reached = wait_until(WAIT, || {
        seen = served_by(&second, HOST);
        seen == "c"
    });
    assert!(
        reached,
        "the second replica serves {seen}\n{}",
        second.logs()
    );
    let lb = ok(get(&second, "/v1/objects/load_balancers"));
    assert!(
        lb.as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == HOST && o["origin"] == "runtime"),
        "{lb}"
    );

    // A replica started later gets them from Redis.
    second.terminate();
    let mut third = confs[1].start();
    support::api::wait_for_link(&third, true, 0, WAIT);
    assert_eq!(served_by(&third, HOST), "c", "{}", third.logs());

    // A delete reaches the other replica too.
    ok(delete(&first, &format!("/v1/load_balancers/{HOST}")));
    let reached = wait_until(WAIT, || served_by(&third, HOST) == "a");
    assert!(reached, "{}", third.logs());
    first.terminate();
    third.terminate();
}

#[test]
fn objects_put_at_run_time_survive_a_hot_upgrade() {
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let state_file = dir.path().join("state.json");
    let mut old = file(&a, Some(&state_file)).builder().grace(1, 1).start();
    put_objects(&old, &c);
    assert_eq!(served_by(&old, HOST), "c");
    // The new process reads the state file the old one wrote.
    let mut new = old.upgrade(None);
    assert_eq!(served_by(&new, HOST), "c", "{}", new.logs());
    assert_eq!(ok(get(&new, "/v1/monitors/m2"))["origin"], "runtime");
    new.terminate();
}

#[test]
fn a_peers_object_that_does_not_fit_this_replicas_file_is_refused_with_a_log_line() {
    let redis = Redis::start();
    let (a, b, c) = (
        Upstream::healthy("a"),
        Upstream::healthy("b"),
        Upstream::healthy("c"),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    let mut first = file(&a, None).cluster(&redis.url(), "differ", &key).start();
    // This replica's file has no pool `p`, which the load balancer falls back to.
    let mut second = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("*", lb(["other"]))
        .pool("other", pool([&b]))
        .cluster(&redis.url(), "differ", &key)
        .start();
    for p in [&first, &second] {
        support::api::wait_for_link(p, true, 0, WAIT);
    }
    put_objects(&first, &c);
    assert!(
        second.wait_for_log("cluster: an object from replica", WAIT),
        "{}",
        second.logs()
    );
    let line = second.log_lines("was refused here").join("\n");
    assert!(line.contains("fallback_pool"), "names the key: {line}");
    // What fits is taken (the monitor and the pool); the load balancer is not.
    assert!(wait_until(WAIT, || get(&second, "/v1/pools/q").0 == 200));
    assert_eq!(served_by(&second, HOST), "b", "its own catch-all");
    assert_eq!(served_by(&first, HOST), "c");
    first.terminate();
    second.terminate();
}

#[test]
fn with_a_cluster_a_delete_clears_its_parts_from_redis_and_an_object_too_large_to_share_is_413() {
    let redis = Redis::start();
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    let mut first = file(&a, None).cluster(&redis.url(), "parts", &key).start();
    support::api::wait_for_link(&first, true, 0, WAIT);
    put_objects(&first, &c);
    ok(support::api::patch(
        &first,
        "/v1/pools/q/endpoints/c",
        r#"{"weight": 0.5}"#,
    ));
    ok(support::api::patch(
        &first,
        &format!("/v1/load_balancers/{HOST}"),
        r#"{"session_affinity": "source_ip"}"#,
    ));
    let mut conn = redis.connection();
    let mut fields = || -> Vec<String> {
        ::redis::cmd("HKEYS")
            .arg("tether:parts:changes")
            .query(&mut conn)
            .expect("HKEYS")
    };
    let parts = ["endpoint_weight:q/c", &format!("load_balancer:{HOST}")].map(String::from);
    let mut seen = Vec::new();
    let stored = wait_until(WAIT, || {
        seen = fields();
        parts.iter().all(|p| seen.contains(p))
    });
    assert!(stored, "{seen:?}");

    // The deleting replica removes the changes of the deleted objects'
    // parts: no replica could apply them any more.
    ok(delete(&first, &format!("/v1/load_balancers/{HOST}")));
    ok(delete(&first, "/v1/pools/q"));
    let cleared = wait_until(WAIT, || {
        seen = fields();
        parts.iter().all(|p| !seen.contains(p)) && seen.contains(&"object:pool/q".to_string())
    });
    assert!(cleared, "{seen:?}\n{}", first.logs());

    // An object that fits the admin API's 64 KiB body but not, sealed, the
    // cluster's 64 KiB value: refused where it is made, not kept here only.
    let endpoint = |i: usize| json!({"name": format!("e{i:04}-{}", "x".repeat(160)), "address": c.addr().to_string()});
    let mut n = 1;
    let mut body = loop {
        let body = json!({"endpoints": (0..n).map(endpoint).collect::<Vec<_>>()});
        if body.to_string().len() > 65_000 {
            break body;
        }
        n += 1;
    };
    // Padded to 65,500 bytes: the put change adds its envelope, the seal its MAC.
    let pad = 65_500 - body.to_string().len();
    let last = &mut body["endpoints"][n - 1]["name"];
    *last = json!(format!("{}{}", last.as_str().unwrap(), "y".repeat(pad)));
    assert_eq!(body.to_string().len(), 65_500);
    let messages = refused(put(&first, "/v1/pools/big", &body), 413);
    assert!(
        messages[0].contains(r#"pool "big" is too large to share"#),
        "{messages:?}"
    );
    assert!(messages[0].contains("at most"), "{messages:?}");
    assert_eq!(get(&first, "/v1/pools/big").0, 404);
    first.terminate();
}

#[test]
fn a_put_does_not_check_the_other_objects_again() {
    // The file's pool `s` trusts a CA file that is removed after the start
    // (a reload would now refuse the file): a put of another object is no
    // business of it, and `s` keeps the CA it loaded.
    let (a, c) = (Upstream::healthy("a"), Upstream::healthy("c"));
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::copy("conf/example-cert.pem", &ca).unwrap();
    let secure = pool([&a]).with(|p| {
        p.tls = Some(::tether::config::PoolTls {
            ca_path: Some(ca.clone()),
            ..Default::default()
        })
    });
    let mut proxy = file(&a, None).pool("s", secure).start();
    std::fs::remove_file(&ca).unwrap();
    put_objects(&proxy, &c);
    assert_eq!(served_by(&proxy, HOST), "c");
    let s = ok(get(&proxy, "/v1/objects/pools"));
    assert!(
        s.as_array().unwrap().iter().any(|p| p["name"] == "s"),
        "{s}"
    );
    proxy.terminate();
}
