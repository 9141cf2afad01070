//! Cloudflare's v4 Load Balancing API (docs/cloudflare-api.md) spoken by the official
//! `cloudflare` Python SDK (PyPI, pinned; installed by scripts/cloudflare_tools.sh into
//! target/), pointed at the real `tether` binary with `base_url=http://<admin>/client/v4`
//! and the admin token. tests/cloudflare/sdk.py creates a monitor, a pool and a load
//! balancer; this test sends traffic through them; the SDK patches weights and
//! affinity, reads pool health, sees values Tether cannot honour refused, and deletes
//! them. Every answer is parsed by the SDK's own types with strict response validation,
//! and checked to hold no field those types do not declare. The same objects survive a
//! restart (the state file) and appear on a second replica of a `cluster`.
// Waits are bounded by real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::cflb::keys_file;
use support::redis::Redis;
use support::tools::{prepared_python, repo};
use support::*;
use tempfile::TempDir;

const TOKEN: &str = "cloudflare-sdk-test-token-0123456789";
const HOST: &str = "sdk.example.com";
const CLUSTER_KEY: &[u8] = b"cloudflare api test key, 32 byte";

/// The SDK venv's python: scripts/cloudflare_tools.sh once per test binary.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        prepared_python(
            "cloudflare_tools.sh",
            "the SDK test needs python3 with venv and PyPI access",
        )
    })
}

/// Runs one step of tests/cloudflare/sdk.py against `proxy`: its last stdout line, as
/// JSON. Panics with the script's output and Tether's log when it fails.
fn sdk(proxy: &TetherProc, step: &str, args: &[&str]) -> Value {
    let ran = run_to_end(
        Command::new(python())
            .arg(repo().join("tests/cloudflare/sdk.py"))
            .args(["--base-url", &proxy.admin_url("/client/v4")])
            .args(["--token", TOKEN, step])
            .args(args),
        Duration::from_secs(120),
        "tests/cloudflare/sdk.py",
    );
    let Ran { status, out, err } = &ran;
    if !ran.succeeded() {
        panic!(
            "sdk.py {step} failed ({status:?}):\n{out}\n{err}\n--- tether:\n{}",
            proxy.logs()
        );
    }
    serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("sdk.py {step}: not JSON ({e}):\n{out}\n{err}"))
}

/// Like [`sdk`], until it succeeds or `timeout` passes (a replica sees the cluster's
/// changes within moments, not at once).
fn sdk_eventually(proxy: &TetherProc, step: &str, args: &[&str], timeout: Duration) -> Value {
    let mut last = None;
    let reached = wait_until(timeout, || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sdk(proxy, step, args)));
        let ok = r.is_ok();
        last = r.ok();
        ok
    });
    assert!(reached, "sdk.py {step} did not pass within {timeout:?}");
    last.unwrap_or(Value::Null)
}

/// GET / through `proxy` with `Host: HOST` and the extra headers: (status, the upstream
/// that answered, whether a `__cflb` cookie was set).
fn visit(proxy: &TetherProc, extra: &[(&str, &str)]) -> (u16, String, bool) {
    let mut headers = vec![("host", HOST)];
    headers.extend_from_slice(extra);
    let (status, h, _) = get_h(&client(), &proxy.url("/"), &headers);
    let cookie = h
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap_or("").starts_with("__cflb="));
    (status, header(&h, "x-upstream").unwrap_or_default(), cookie)
}

/// One replica: a file load balancer `file.example.com` over pool `file-pool` (a
/// configuration needs one), the admin API with the token, a state file in `dir`.
fn replica(dir: &Path, name: &str, file_up: &Upstream, redis: Option<&Redis>) -> Tether {
    let token = dir.join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    let conf = tether()
        .listener(free_port())
        .admin_with_token(free_port(), &token)
        .state_file(&dir.join(format!("{name}.state")))
        .cookie_keys_file(&keys_file(dir, "cookie.keys", &[CLUSTER_KEY]))
        .load_balancer("file.example.com", lb(["file-pool"]))
        .pool("file-pool", pool([file_up]));
    match redis {
        Some(r) => conf.cluster(
            &r.url(),
            "cfapi",
            &cluster_key_file(dir, "cluster.key", CLUSTER_KEY),
        ),
        None => conf,
    }
}

#[test]
fn the_official_sdk_manages_monitors_pools_and_load_balancers() {
    let dir = TempDir::new().unwrap();
    let file_up = Upstream::healthy("file");
    let origin = Upstream::healthy("origin");
    let redis = Redis::start();
    let conf_a = replica(dir.path(), "a", &file_up, Some(&redis));
    let conf_b = replica(dir.path(), "b", &file_up, Some(&redis));
    let mut a = conf_a.start();
    let b = conf_b.start();

    // Nothing answers for the host before the SDK creates its load balancer (the
    // file's only load balancer is another host's).
    assert_ne!(visit(&a, &[]).1, "origin");

    let ids = sdk(&a, "create", &[&origin.port().to_string(), HOST]);
    let ids_text = ids.to_string();
    let ids_arg = ids_text.as_str();
    // It serves at once, with cookie affinity as created.
    let (status, upstream, cookie) = visit(&a, &[]);
    assert_eq!((status, upstream.as_str(), cookie), (200, "origin", true));
    let before = origin.requests();
    for _ in 0..5 {
        assert_eq!(visit(&a, &[]).0, 200);
    }
    assert_eq!(origin.requests() - before, 5);

    // Weights and affinity patched, pool health read; then header affinity: no cookie.
    sdk(&a, "patch", &[ids_arg]);
    let (status, upstream, cookie) = visit(&a, &[("x-user", "alice")]);
    assert_eq!((status, upstream.as_str(), cookie), (200, "origin", false));
    let shown = sdk(&a, "show", &[ids_arg]);
    assert_eq!(shown["pool_weight"], 0.5, "{shown}");
    assert_eq!(shown["session_affinity"], "header", "{shown}");
    sdk(&a, "refuse", &[ids_arg]);
    // The file's objects are there too: patched like the rest, never deleted.
    let conf_path = a.config_path().display().to_string();
    sdk(&a, "file", &[&conf_path]);

    // The second replica has them too, and serves the host.
    let shown_b = sdk_eventually(&b, "show", &[ids_arg], Duration::from_secs(15));
    assert_eq!(shown_b, shown);
    assert_eq!(visit(&b, &[("x-user", "bob")]).1, "origin");

    // A restart keeps them (the state file), with the same IDs.
    a.terminate();
    let mut a = conf_a.start();
    assert_eq!(sdk(&a, "show", &[ids_arg]), shown);
    assert_eq!(visit(&a, &[("x-user", "carol")]).1, "origin");
    // ... and so does a reload (SIGHUP) of the same file.
    a.signal("HUP");
    assert!(
        a.wait_for_log("is the running configuration", Duration::from_secs(15)),
        "{}",
        a.logs()
    );
    assert_eq!(sdk(&a, "show", &[ids_arg]), shown);
    assert_eq!(visit(&a, &[("x-user", "dave")]).1, "origin");

    // `tether export --cloudflare` shows them too (the state file's objects), same IDs.
    let conf_path = a.config_path().display().to_string();
    let (code, out, err) = run_tether(
        &["export", "--cloudflare", "-c", &conf_path],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let exported: Value = serde_json::from_str(&out).expect("export is JSON");
    for (list, key) in [
        ("monitors", "monitor"),
        ("pools", "pool"),
        ("load_balancers", "lb"),
    ] {
        let found = exported[list]
            .as_array()
            .is_some_and(|l| l.iter().any(|o| o["id"] == ids[key]));
        assert!(found, "{list}: {} not in the export:\n{out}", ids[key]);
    }
    // ... and the file pool's weight and load balancer's affinity the SDK patched (run-time
    // changes recorded apart from the objects).
    let file_pool = exported["pools"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["name"] == "file-pool"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(file_pool["origins"][0]["weight"], 0.25, "{out}");
    let file_lb = exported["load_balancers"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["name"] == "file.example.com"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(file_lb["session_affinity"], "cookie", "{out}");

    // Deleted through the SDK: gone here and on the other replica.
    sdk(&a, "delete", &[ids_arg]);
    assert_ne!(visit(&a, &[]).1, "origin");
    let gone = wait_until(Duration::from_secs(15), || visit(&b, &[]).1 != "origin");
    assert!(
        gone,
        "the second replica still serves the deleted load balancer"
    );
}

/// `tether import --cloudflare` turns a Cloudflare export into a `tether:` section that
/// `tether -t` accepts, naming on stderr each field it could not carry over; `tether
/// export --cloudflare` gives the objects back with the same references.
#[test]
fn import_then_export_through_the_binary() {
    let fixture = repo().join("tests/cloudflare/export.json");
    let (code, yaml, err) = run_tether(
        &["import", "--cloudflare", fixture.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    for field in [
        "pools[0].check_regions",
        "pools[0].notification_email",
        "load_balancers[0].ttl",
        "monitors[0].probe_zone",
    ] {
        assert!(
            err.lines().any(|l| l.contains(field)),
            "{field} not named on stderr:\n{err}"
        );
    }
    let section = yaml.replacen(
        "tether:\n",
        &format!(
            "tether:\n  listeners:\n  - address: 127.0.0.1:{}\n",
            free_port()
        ),
        1,
    );
    let dir = TempDir::new().unwrap();
    let conf = dir.path().join("imported.yaml");
    std::fs::write(&conf, format!("version: 1\n{section}")).unwrap();
    let conf = conf.to_str().unwrap();
    let (code, out, err) = run_tether(&["-t", "-c", conf], Duration::from_secs(30));
    assert_eq!(
        code, 0,
        "tether -t refused the import:\n{out}\n{err}\n{section}"
    );
    let (code, out, err) = run_tether(
        &["export", "--cloudflare", "-c", conf],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let pools = v["pools"].as_array().expect("pools");
    let id_of = |name: &str| {
        pools
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["id"].clone())
            .unwrap_or_else(|| panic!("no pool {name} in {out}"))
    };
    let lb = &v["load_balancers"][0];
    assert_eq!(lb["name"], "www.example.com");
    assert_eq!(
        lb["default_pools"],
        Value::Array(vec![id_of("primary-dc-1"), id_of("backup-dc")])
    );
    assert_eq!(lb["fallback_pool"], id_of("backup-dc"));
    assert_eq!(lb["session_affinity"], "cookie");
    assert_eq!(lb["session_affinity_ttl"], 1800.0);
}

/// A Cloudflare `PATCH` of an origin's weight, or of a monitor's retries, keeps what
/// Cloudflare's objects cannot say (docs/cloudflare-api.md, "Tether's own keys"): the
/// pool's `protocol: h2c` and the gRPC monitor's `grpc_service` and sub-second
/// `interval` (shown as whole seconds), as the native API shows them afterwards; and
/// Cloudflare's error codes for an unknown ID and an unknown path.
#[test]
fn a_cloudflare_patch_keeps_tethers_own_keys() {
    let dir = TempDir::new().unwrap();
    let up = Upstream::healthy("up");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    let proxy = tether()
        .listener(free_port())
        .admin_with_token(free_port(), &token)
        .monitor(
            "health",
            Monitor::every(0.2).with(|m| {
                m.r#type = Probe::Grpc;
                m.grpc_service = "tether.test.Test".into();
            }),
        )
        .load_balancer("grpc.example.com", lb(["grpc"]))
        .pool(
            "grpc",
            pool([&up]).monitor("health").with(|p| {
                p.protocol = ::tether::config::OriginProtocol::H2c;
            }),
        )
        .start();
    let call = |method: reqwest::Method, path: &str, body: &str| {
        support::api::admin(&proxy, method, path, body, Some(TOKEN))
    };
    let cf = "/client/v4/accounts/any/load_balancers";
    let id_of = |list: &str, name: &str| {
        let (status, _, v) = call(reqwest::Method::GET, &format!("{cf}/{list}"), "");
        assert_eq!(status, 200, "{v}");
        v["result"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|o| o["name"] == name || o["description"] == name)
            })
            .map(|o| o["id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let pool_id = id_of("pools", "grpc");
    let monitor_id = id_of("monitors", "health");

    let origin = format!(
        r#"{{"origins": [{{"name": "up", "address": "127.0.0.1", "port": {}, "weight": 0.5}}]}}"#,
        up.port()
    );
    let (status, _, v) = call(
        reqwest::Method::PATCH,
        &format!("{cf}/pools/{pool_id}"),
        &origin,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["origins"][0]["weight"], 0.5, "{v}");
    let (status, _, v) = call(
        reqwest::Method::PATCH,
        &format!("{cf}/monitors/{monitor_id}"),
        r#"{"retries": 1}"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["result"]["interval"], 0,
        "0.2 s shows as whole seconds: {v}"
    );

    let (status, _, v) = call(reqwest::Method::GET, "/v1/objects/pools", "");
    assert_eq!(status, 200, "{v}");
    let pools = v["result"].as_array().cloned().unwrap_or_default();
    let grpc = pools
        .iter()
        .find(|p| p["name"] == "grpc")
        .unwrap_or_else(|| panic!("no pool grpc in {v}"));
    assert_eq!(grpc["value"]["protocol"], "h2c", "{grpc}");
    assert_eq!(grpc["value"]["endpoints"][0]["weight"], 0.5, "{grpc}");
    let (status, _, v) = call(reqwest::Method::GET, "/v1/monitors/health", "");
    assert_eq!(status, 200, "{v}");
    let monitor = &v["result"]["value"];
    assert_eq!(monitor["grpc_service"], "tether.test.Test", "{v}");
    assert_eq!(monitor["interval"], 0.2, "{v}");
    assert_eq!(monitor["retries"], 1, "{v}");

    // Cloudflare's error codes: an unknown ID, a path no route takes.
    let (status, _, v) = call(
        reqwest::Method::GET,
        &format!("{cf}/pools/{}", "0".repeat(32)),
        "",
    );
    assert_eq!(
        (status, &v["errors"][0]["code"]),
        (404, &Value::from(7003)),
        "{v}"
    );
    let (status, _, v) = call(reqwest::Method::GET, &format!("{cf}/nothing"), "");
    assert_eq!(
        (status, &v["errors"][0]["code"]),
        (404, &Value::from(7000)),
        "{v}"
    );
}
