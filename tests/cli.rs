//! The command line and configuration errors (SPEC 1–2), as an operator meets
//! them: exit codes and the exact messages.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn without_a_config_file_tether_says_one_is_needed() {
    let (code, _, err) = run_tether(&[], Duration::from_secs(30));
    assert_eq!(code, 2);
    assert!(err.contains("a configuration file is needed"), "{err}");
}

#[test]
fn every_shipped_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let (code, out, err) = run_tether(
            &["-t", "-c", path.to_str().unwrap()],
            Duration::from_secs(30),
        );
        assert_eq!(code, 0, "{}:\n{out}{err}", path.display());
        assert_eq!(out.trim(), "configuration OK", "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 2, "conf/tether.yaml and conf/demo.yaml at least");
}

#[test]
fn test_mode_starts_nothing() {
    let up = Upstream::healthy("u");
    let port = free_port();
    let (code, out, _) = tether()
        .listener(port)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]))
        .check();
    assert_eq!((code, out.trim()), (0, "configuration OK"));
    assert!(!accepts(format!("127.0.0.1:{port}").parse().unwrap()));
}

/// Invalid on purpose (unknown keys, wrong values): literal YAML, which the config
/// builder cannot write.
const BROKEN: &str = r#"listeners:
  - address: "127.0.0.1:notaport"
load_balancers:
  www.example.com:
    default_pools: [primary, secndary]
    steering_policy: fastest
    session_affinity_attributes:
      samesite: None
      secure: Never
pools:
  primary:
    monitor: web2
    endpoints:
      - {name: web-1, address: "127.0.0.1:9001"}
      - {name: web-2, address: "127.0.0.1:9002", weight: 3}
      - {name: web-1, address: "127.0.0.1:9003", wieght: 1}
"#;

#[test]
fn every_error_is_reported_with_its_key_path() {
    let (code, out, err) = check_section(BROKEN);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("configuration OK"));
    for expected in [
        "tether.listeners[0].address:",
        r#"tether.load_balancers["www.example.com"].default_pools[1]: no pool named "secndary""#,
        r#"tether.load_balancers["www.example.com"].steering_policy: must be one of "", off, random, least_outstanding_requests, dynamic_latency; got "fastest""#,
        r#"tether.load_balancers["www.example.com"].session_affinity_attributes.secure: must not be Never when samesite is None"#,
        r#"tether.pools.primary.monitor: no monitor named "web2""#,
        "tether.pools.primary.endpoints[1].weight: must be between 0 and 1, got 3",
        r#"tether.pools.primary.endpoints[2].name: duplicate endpoint name "web-1" (also endpoints[0])"#,
        "tether.pools.primary.endpoints[2].wieght: unknown key (expected one of: name, address, weight, enabled, header, server_name)",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("configuration errors"), "{err}");
}

#[test]
fn an_invalid_file_never_starts_a_server() {
    let port = free_port();
    let mut proc = tether()
        .listener(port)
        .load_balancer("*", lb(["nope"]))
        .pool("p", pool([Endpoint::at("a", "127.0.0.1:1")]))
        .builder()
        .spawn();
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .expect("tether must exit on an invalid file");
    assert_eq!(status.code(), Some(1));
    assert!(
        proc.stderr().contains(r#"no pool named "nope""#),
        "{}",
        proc.stderr()
    );
    assert!(!accepts(format!("127.0.0.1:{port}").parse().unwrap()));
}

#[test]
fn pingora_keys_are_checked_too() {
    let (code, _, err) = check_config(
        "version: 1\nthreads: many\ntether:\n  listeners:\n    - address: \"127.0.0.1:1\"\n  load_balancers:\n    \"*\":\n      default_pools: [p]\n  pools:\n    p:\n      endpoints:\n        - {name: a, address: \"127.0.0.1:2\"}\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("threads"), "{err}");
}

#[test]
fn a_missing_tether_section_is_named() {
    let (code, _, err) = check_config("version: 1\nthreads: 2\n");
    assert_eq!(code, 1);
    assert!(err.contains("tether: missing"), "{err}");
}

#[test]
fn help_and_version_speak_tether() {
    let (code, out, _) = run_tether(&["--help"], Duration::from_secs(30));
    assert_eq!(code, 0);
    assert!(out.contains("Tether: a sticky load balancer"), "{out}");
    for flag in [
        "-c, --conf <FILE>",
        "-t, --test",
        "-d, --daemon",
        "-u, --upgrade",
        "-V, --version",
    ] {
        assert!(out.contains(flag), "{flag} in:\n{out}");
    }
    assert!(
        !out.contains("base set of command line arguments"),
        "Pingora's words:\n{out}"
    );
    assert!(!out.contains("nocapture"), "{out}");
    let (code, out, _) = run_tether(&["--version"], Duration::from_secs(30));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("tether {}", env!("CARGO_PKG_VERSION")));
    let (code, _, err) = run_tether(&["--no-such-flag"], Duration::from_secs(30));
    assert_eq!(code, 2, "{err}");
}

/// A file that never mentions the shutdown timers: Ctrl-C (SIGINT) stops at
/// once; SIGTERM starts Tether's 30 s grace period (not Pingora's 300 s), and
/// a second SIGTERM during it stops at once.
#[test]
fn without_grace_keys_a_stop_takes_30_s_and_a_second_signal_stops_at_once() {
    let up = Upstream::healthy("a");
    let section = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]));

    let mut proxy = section.builder().default_grace().start();
    proxy.signal("INT");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("SIGINT stops at once\n{}", proxy.logs()));
    assert_eq!(status.code(), Some(0), "{}", proxy.logs());
    // Tether's own answer, not Pingora's fast shutdown (whose accept loops
    // could spin and keep the process alive).
    assert!(
        proxy.logs().contains("SIGINT received: stopping now"),
        "{}",
        proxy.logs()
    );

    let mut proxy = section.builder().default_grace().start();
    proxy.signal("TERM");
    assert!(
        proxy.wait_for_log("grace period 30s starts", Duration::from_secs(10)),
        "{}",
        proxy.logs()
    );
    assert!(proxy.is_running(), "the first SIGTERM is a graceful stop");
    // Listening for the next one (its listener may start after a SIGTERM sent
    // this early, on a loaded machine): the line says so.
    assert!(
        proxy.wait_for_log(
            "graceful stop under way: a second SIGINT or SIGTERM stops at once",
            Duration::from_secs(10)
        ),
        "{}",
        proxy.logs()
    );
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("a second SIGTERM stops at once\n{}", proxy.logs()));
    assert_eq!(status.code(), Some(143));
    assert!(
        proxy.logs().contains("SIGTERM again: stopping now"),
        "{}",
        proxy.logs()
    );
}
