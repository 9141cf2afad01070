//! SIGHUP reloads in place (issue 10): under load, with 0 failed requests,
//! the same PID and the new configuration in force; a request in flight
//! across the reload completes; an invalid file is refused and changes
//! nothing; run-time changes survive a reload unless the file changed their
//! field.
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::api::{get, ok, patch};
use support::*;

fn section(a: &Upstream, b: &Upstream, admin: u16, listen: u16, with_b: bool) -> Tether {
    let endpoints = if with_b { pool([a, b]) } else { pool([a]) };
    tether()
        .listener(listen)
        .admin(admin)
        .decision_header()
        .load_balancer("*", lb(["p"]))
        .pool("p", endpoints)
}

/// The endpoints that answered `n` requests.
fn served_by(proxy: &TetherProc, n: usize) -> std::collections::BTreeSet<String> {
    let c = client();
    (0..n)
        .filter_map(|_| {
            let (status, headers, _) = support::get(&c, &proxy.url("/"), "example.com");
            (status == 200).then(|| upstream_of(&headers)).flatten()
        })
        .collect()
}

#[test]
fn a_sighup_reload_under_load_fails_no_request_and_keeps_the_pid() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let slow = Upstream::slow("slow", Duration::from_millis(1500));
    let (admin, listen) = (free_port(), free_port());
    let mut proxy = section(&a, &b, admin, listen, false)
        .load_balancer("slow.test", lb(["s"]))
        .pool("s", pool([&slow]))
        .start();
    let pid = proxy.pid();
    assert_eq!(served_by(&proxy, 10), ["a".to_string()].into());

    // Load: kept-alive clients and fresh connections until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = proxy.url("/");
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, sent, failed, url) = (
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&failed),
                url.clone(),
            );
            std::thread::spawn(move || {
                let mut c = client();
                for n in 0..20_000u32 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if i % 2 == 1 && n % 5 == 0 {
                        c = client(); // a fresh connection now and then
                    }
                    let (status, _, _) = support::get(&c, &url, "example.com");
                    sent.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // A request in flight across the reload.
    let in_flight = {
        let url = proxy.url("/");
        std::thread::spawn(move || support::get(&client(), &url, "slow.test").0)
    };
    assert!(wait_until(Duration::from_secs(5), || slow.requests() >= 1));

    // b joins the pool.
    let new = section(&a, &b, admin, listen, true)
        .load_balancer("slow.test", lb(["s"]))
        .pool("s", pool([&slow]));
    proxy.rewrite_config(&new.yaml());
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || served_by(&proxy, 20)
            .contains("b")),
        "b serves after the reload"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        in_flight.join().unwrap(),
        200,
        "the request in flight completed"
    );
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("reload under load: {sent} requests, {failed} failed");
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed across the reload"
    );
    assert!(proxy.is_running());
    assert_eq!(proxy.pid(), pid, "the same process");
}

#[test]
fn an_invalid_file_is_refused_and_changes_nothing() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let (admin, listen) = (free_port(), free_port());
    let mut proxy = section(&a, &b, admin, listen, false).start();
    let mut broken = section(&a, &b, admin, listen, true).yaml();
    broken.push_str("max_sessions: -5\n");
    proxy.rewrite_config(&broken);
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log(
            "reload refused: tether.max_sessions",
            Duration::from_secs(10)
        ),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        served_by(&proxy, 20),
        ["a".to_string()].into(),
        "b never joined"
    );
    assert!(proxy.is_running());
}

#[test]
fn run_time_changes_survive_a_reload_unless_the_file_changed_that_field() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let (admin, listen) = (free_port(), free_port());
    let mut proxy = section(&a, &b, admin, listen, true).start();
    ok(patch(&proxy, "/v1/pools/p/endpoints/b", r#"{"weight": 0}"#));
    ok(patch(
        &proxy,
        "/v1/load_balancers/*",
        r#"{"session_affinity": "source_ip", "session_affinity_ttl": 60}"#,
    ));
    // The file now sets the TTL itself (and nothing about weights).
    let edited = section(&a, &b, admin, listen, true)
        .load_balancer("*", lb(["p"]).affinity(Affinity::SourceIp).ttl(120));
    proxy.rewrite_config(&edited.yaml());
    proxy.signal("HUP");
    assert!(proxy.wait_for_log("is the running configuration", Duration::from_secs(10)));
    let lb = ok(get(&proxy, "/v1/load_balancers/*"));
    assert_eq!(
        lb["session_affinity_ttl"], 120,
        "the file's edit wins: {lb}"
    );
    assert_eq!(lb["session_affinity"], "source_ip");
    assert_eq!(
        ok(get(&proxy, "/v1/pools/p/endpoints/b"))["weight"],
        0.0,
        "the run-time weight stays"
    );
    assert_eq!(served_by(&proxy, 10), ["a".to_string()].into());
}

/// `scripts/reload.sh` (systemd's ExecReload=) on a running tether.
fn reload_sh(proxy: &TetherProc) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reload.sh"))
        .args(["-c", &proxy.config_path().display().to_string()])
        .args(["--pid", &proxy.pid().to_string()])
        .args(["--bin", TETHER_BIN])
        .output()
        .expect("run scripts/reload.sh")
}

#[test]
fn reload_sh_validates_then_reloads_in_place() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let (admin, listen) = (free_port(), free_port());
    let proxy = section(&a, &b, admin, listen, false).start();
    let pid = proxy.pid();

    let mut broken = section(&a, &b, admin, listen, true).yaml();
    broken.push_str("max_sessions: -5\n");
    proxy.rewrite_config(&broken);
    let out = reload_sh(&proxy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken file fails the reload");
    assert!(
        stderr.contains("tether.max_sessions: must be between"),
        "{stderr}"
    );
    assert!(
        proxy.log_lines("SIGHUP: reloading").is_empty(),
        "nothing was sent"
    );

    proxy.rewrite_config(&section(&a, &b, admin, listen, true).yaml());
    let out = reload_sh(&proxy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy.wait_for_log("is the running configuration", Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(5), || served_by(&proxy, 20)
        .contains("b")));
    assert_eq!(proxy.pid(), pid);
}

#[test]
fn a_reload_switches_the_access_log_format() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let (admin, listen) = (free_port(), free_port());
    let mut proxy = section(&a, &b, admin, listen, false).start();
    let c = client();
    assert_eq!(
        support::get(&c, &proxy.url("/text-line"), "example.com").0,
        200
    );
    assert!(proxy.wait_for_log("path=/text-line", Duration::from_secs(5)));

    proxy.rewrite_config(
        &section(&a, &b, admin, listen, false)
            .access_log("json")
            .yaml(),
    );
    proxy.signal("HUP");
    assert!(
        proxy.wait_for_log("is the running configuration", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        support::get(&c, &proxy.url("/json-line"), "example.com").0,
        200
    );
    let json_line = || {
        proxy.logs().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
            (v["path"] == "/json-line").then_some(v)
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), || json_line().is_some()),
        "no JSON line after the reload:\n{}",
        proxy.logs()
    );
    assert_eq!(json_line().unwrap()["endpoint"], "a");
}
