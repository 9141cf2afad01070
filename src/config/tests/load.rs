//! The whole file through `load_str`: every error with its key path, all
//! at once, in document order; Pingora's keys; the top-level `tether:` keys.

use super::*;
use crate::config::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn conf_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name)
}

#[test]
fn reference_config_loads_and_uses_every_key() {
    let loaded = load_file(&conf_path("tether.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let s = &loaded.server;
    assert_eq!(s.version, 1);
    assert_eq!(s.threads, 2);
    assert_eq!(s.pid_file, "/tmp/tether.pid");
    assert_eq!(s.upgrade_sock, "/tmp/tether_upgrade.sock");
    assert_eq!(s.error_log, None);
    assert_eq!(s.grace_period_seconds, Some(10));
    assert_eq!(s.graceful_shutdown_timeout_seconds, Some(5));
    assert_eq!(s.upstream_keepalive_pool_size, 128);
    assert!(!s.work_stealing);

    let t = &loaded.tether;
    assert_eq!(t.listeners.len(), 3);
    assert_eq!(t.listeners[0].address, "0.0.0.0:8080");
    assert_eq!(t.listeners[0].tls, None);
    let tls = t.listeners[1].tls.as_ref().unwrap();
    assert_eq!(
        *tls,
        Tls::single(
            PathBuf::from("conf/example-cert.pem"),
            PathBuf::from("conf/example-key.pem")
        )
    );
    assert_eq!(
        t.listeners[2].tls,
        Some(Tls::list(vec![CertificateFiles {
            cert_path: PathBuf::from("conf/example-cert.pem"),
            key_path: PathBuf::from("conf/example-key.pem"),
        }]))
    );
    let admin = t.admin.as_ref().unwrap();
    assert_eq!(admin.address, "127.0.0.1:9180");
    assert_eq!(
        admin.token_file,
        Some(PathBuf::from("conf/example-admin.token"))
    );
    assert_eq!(
        t.cookie_keys_file,
        Some(PathBuf::from("conf/example-cookie.keys"))
    );
    assert_eq!(t.state_file, Some(PathBuf::from("/tmp/tether-state.json")));
    assert_eq!(t.max_sessions, 1_000_000);
    assert!(!t.decision_header);
    assert_eq!(t.upstream_timeouts, UpstreamTimeouts::default());

    let www = &t.load_balancers["www.example.com"];
    assert_eq!(www.name, "www.example.com");
    assert_eq!(www.default_pools, vec!["primary", "secondary"]);
    assert_eq!(www.fallback_pool.as_deref(), Some("fallback"));
    assert_eq!(www.steering_policy, SteeringPolicy::Random);
    assert_eq!(www.random_steering.weight_of("primary"), 0.8);
    assert_eq!(www.random_steering.weight_of("fallback"), 1.0);
    assert_eq!(www.session_affinity, SessionAffinity::Cookie);
    assert_eq!(www.session_affinity_ttl.as_secs(), 82_800);
    let a = &www.session_affinity_attributes;
    assert_eq!(a.samesite, SameSite::Auto);
    assert_eq!(a.secure, Secure::Auto);
    assert_eq!(a.drain_duration.as_secs(), 60);
    assert_eq!(a.zero_downtime_failover, ZeroDowntimeFailover::Temporary);
    assert!(www.adaptive_routing.failover_across_pools);
    assert!(!www.always_use_https);

    let star = &t.load_balancers["*"];
    assert_eq!(star.steering_policy, SteeringPolicy::Off);
    assert_eq!(star.session_affinity, SessionAffinity::Header);
    assert_eq!(
        star.session_affinity_attributes.headers,
        vec!["X-User-Id", "cookie:session,lang"]
    );

    let primary = &t.pools["primary"];
    assert_eq!(primary.monitor.as_deref(), Some("web"));
    assert_eq!(primary.endpoints.len(), 2);
    assert_eq!(primary.endpoints[0].host.as_deref(), Some("app.internal"));
    assert_eq!(
        primary.endpoints[0].socket_addr,
        "127.0.0.1:9001".parse().unwrap()
    );
    assert_eq!(primary.endpoints[1].address, "localhost:9002");
    assert_eq!(primary.endpoints[1].socket_addr.port(), 9002);
    assert_eq!(primary.endpoints[1].weight, 0.5);
    assert_eq!(t.pools["secondary"].origin_steering, OriginSteering::Hash);
    assert_eq!(
        t.pools["fallback"].origin_steering,
        OriginSteering::LeastOutstandingRequests
    );

    let web = &t.monitors["web"];
    assert_eq!(
        web.expected_codes,
        ExpectedCodes(vec![CodePattern::Class(2)])
    );
    assert_eq!(web.header["User-Agent"], vec!["tether-monitor"]);
    assert_eq!(web.interval, Duration::from_secs(60));
    assert_eq!(web.retries, 2);
    assert_eq!(t.monitors["tcp-check"].r#type, MonitorType::Tcp);
}

#[test]
fn demo_config_loads() {
    let loaded = load_file(&conf_path("demo.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.server.threads, 2);
    assert_eq!(loaded.server.pid_file, "/tmp/tether-demo.pid");
    assert_eq!(loaded.server.upgrade_sock, "/tmp/tether-demo_upgrade.sock");
    assert_eq!(loaded.server.grace_period_seconds, Some(1));
    assert_eq!(loaded.server.graceful_shutdown_timeout_seconds, Some(1));
    let t = &loaded.tether;
    assert_eq!(t.listeners[0].address, "127.0.0.1:8080");
    let lb = &t.load_balancers["*"];
    assert_eq!(lb.default_pools, vec!["demo"]);
    assert_eq!(lb.steering_policy, SteeringPolicy::Off);
    assert_eq!(lb.session_affinity, SessionAffinity::Cookie);
    assert_eq!(
        lb.session_affinity_attributes.drain_duration,
        Duration::from_secs(60)
    );
    assert_eq!(t.admin.as_ref().unwrap().address, "127.0.0.1:9180");
    assert!(t.decision_header);
    let pool = &t.pools["demo"];
    let names: Vec<&str> = pool.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["web-1", "web-2", "web-3"]);
    assert_eq!(
        pool.endpoints[2].socket_addr,
        "127.0.0.1:9003".parse().unwrap()
    );
    let m = &t.monitors["demo-health"];
    assert_eq!(m.path, "/health");
    assert_eq!(m.interval, Duration::from_secs(1));
    assert_eq!(m.timeout, Duration::from_millis(500));
    assert_eq!(m.retries, 0);
    assert!(m.expected_codes.matches(200) && !m.expected_codes.matches(204));
}

#[test]
fn minimal_config_gets_the_defaults() {
    let loaded = ok(MINIMAL);
    assert_eq!(loaded.server.threads, 1);
    assert!(
        !loaded.server.work_stealing,
        "Tether's default: per-thread runtimes"
    );
    let stealing = ok(&format!("work_stealing: true\n{MINIMAL}"));
    assert!(stealing.server.work_stealing, "the file's value wins");
    assert_eq!(
        (
            loaded.server.grace_period_seconds,
            loaded.server.graceful_shutdown_timeout_seconds
        ),
        (Some(30), Some(10)),
        "Tether's defaults, not Pingora's 300 s"
    );
    let set = ok(&format!("grace_period_seconds: 2\n{MINIMAL}"));
    assert_eq!(
        set.server.grace_period_seconds,
        Some(2),
        "the file's value wins"
    );
    assert_eq!(set.server.graceful_shutdown_timeout_seconds, Some(10));
    let t = loaded.tether;
    assert_eq!(t.admin, None);
    assert_eq!(t.cookie_keys_file, None);
    assert_eq!(t.state_file, None);
    assert_eq!(t.max_sessions, 1_000_000);
    assert!(!t.decision_header);
    assert_eq!(t.upstream_timeouts, UpstreamTimeouts::default());
    assert!(t.monitors.is_empty());
    let lb = &t.load_balancers["*"];
    assert_eq!(
        *lb,
        LoadBalancer {
            name: "*".into(),
            enabled: true,
            default_pools: vec!["primary".into()],
            fallback_pool: None,
            steering_policy: SteeringPolicy::Off,
            random_steering: RandomSteering::default(),
            session_affinity: SessionAffinity::None,
            session_affinity_ttl: Duration::ZERO,
            session_affinity_attributes: SessionAffinityAttributes::default(),
            adaptive_routing: AdaptiveRouting::default(),
            always_use_https: false,
            rules: vec![],
        }
    );
    let pool = &t.pools["primary"];
    assert_eq!(pool.name, "primary");
    assert!(pool.enabled);
    assert_eq!(pool.minimum_origins, 1);
    assert_eq!(pool.monitor, None);
    assert_eq!(pool.origin_steering, OriginSteering::Random);
    assert_eq!(
        pool.endpoints[0],
        Endpoint {
            name: "web-1".into(),
            address: "127.0.0.1:9001".into(),
            socket_addr: "127.0.0.1:9001".parse().unwrap(),
            weight: 1.0,
            enabled: true,
            host: None,
            server_name: None,
        }
    );
}

#[test]
fn values_are_read() {
    let yaml = r#"
tether:
  listeners: [{ address: "[::1]:8080" }]
  max_sessions: 10
  decision_header: true
  upstream_timeouts: { connect: 0.5, read: 2 }
  load_balancers:
    WWW.Example.COM:
      enabled: false
      default_pools: [b, a]
      fallback_pool: a
      random_steering: { default_weight: 0, pool_weights: { a: 0.25 } }
      session_affinity: ip_cookie
      session_affinity_ttl: 3600
      session_affinity_attributes:
        samesite: None
        secure: Always
        drain_duration: 30
        zero_downtime_failover: sticky
        headers: [cookie]
        require_all_headers: true
      always_use_https: true
  pools:
    a:
      enabled: false
      minimum_origins: 2
      origin_steering: { policy: least_connections }
      endpoints:
        - { name: x, address: "10.0.0.1:80", weight: 0, enabled: false, header: { host: [h.internal] } }
        - { name: y, address: "10.0.0.2:80" }
    b:
      monitor: m
      endpoints: [{ name: x, address: "10.0.0.3:80" }]
  monitors:
    m:
      type: https
      method: HEAD
      path: /ok?full=1
      port: 8443
      expected_codes: 200, 3xx
      expected_body: "All GOOD"
      header: { Host: [a.example], X-Twice: [one, two] }
      interval: 0.2
      timeout: 0.1
      retries: 5
      consecutive_up: 3
      consecutive_down: 100
"#;
    let t = ok(yaml).tether;
    assert_eq!(t.listeners[0].address, "[::1]:8080");
    assert_eq!(t.max_sessions, 10);
    assert!(t.decision_header);
    assert_eq!(t.upstream_timeouts.connect, Duration::from_millis(500));
    assert_eq!(t.upstream_timeouts.read, Duration::from_secs(2));
    assert_eq!(t.upstream_timeouts.idle, Duration::from_secs(90));
    let lb = &t.load_balancers["www.example.com"];
    assert_eq!(lb.name, "www.example.com");
    assert!(!lb.enabled);
    assert_eq!(lb.default_pools, vec!["b", "a"]);
    assert_eq!(lb.random_steering.weight_of("a"), 0.25);
    assert_eq!(lb.random_steering.weight_of("b"), 0.0);
    assert_eq!(lb.session_affinity_ttl.as_secs(), 3600);
    let a = &lb.session_affinity_attributes;
    assert_eq!(
        (
            a.samesite,
            a.secure,
            a.drain_duration,
            a.zero_downtime_failover
        ),
        (
            SameSite::None,
            Secure::Always,
            Duration::from_secs(30),
            ZeroDowntimeFailover::Sticky
        )
    );
    assert!(a.require_all_headers && lb.always_use_https);
    let pa = &t.pools["a"];
    assert!(!pa.enabled);
    assert_eq!(pa.minimum_origins, 2);
    assert_eq!(pa.origin_steering, OriginSteering::LeastConnections);
    assert_eq!(pa.endpoints[0].weight, 0.0);
    assert!(!pa.endpoints[0].enabled);
    assert_eq!(pa.endpoints[0].host.as_deref(), Some("h.internal"));
    let m = &t.monitors["m"];
    assert_eq!(m.r#type, MonitorType::Https);
    assert_eq!(m.method, "HEAD");
    assert_eq!(m.path, "/ok?full=1");
    assert_eq!(m.port, 8443);
    assert_eq!(
        m.expected_codes,
        ExpectedCodes(vec![CodePattern::Exact(200), CodePattern::Class(3)])
    );
    assert_eq!(m.expected_body, "all good");
    assert_eq!(m.header["X-Twice"], vec!["one", "two"]);
    assert_eq!(m.interval, Duration::from_millis(200));
    assert_eq!(m.timeout, Duration::from_millis(100));
    assert_eq!(
        (m.retries, m.consecutive_up, m.consecutive_down),
        (5, 3, 100)
    );
}

#[test]
fn message_styles() {
    let e = errors(&MINIMAL.replace(
        "{ name: web-1, address: \"127.0.0.1:9001\" }",
        "{ name: web-1, address: \"127.0.0.1:9001\", wieght: 1 }",
    ));
    assert_eq!(
            e,
            vec!["tether.pools.primary.endpoints[0].wieght: unknown key (expected one of: name, address, weight, enabled, header, server_name)"]
        );

    let e = errors(&(MINIMAL.to_string() + "  max_sessions: many\n"));
    assert_eq!(
        e,
        vec![r#"tether.max_sessions: expected an integer, got a string ("many")"#]
    );

    let e = errors(&MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\", weight: 3 }\n",
        ));
    assert_eq!(
        e,
        vec!["tether.pools.primary.endpoints[1].weight: must be between 0 and 1, got 3"]
    );

    let e = errors(&with_lb("steering_policy: fastest"));
    assert_eq!(
        e,
        vec![
            r#"tether.load_balancers["*"].steering_policy: must be one of "", off, random, least_outstanding_requests, dynamic_latency; got "fastest""#
        ]
    );

    let e = errors(&MINIMAL.replace("name: web-1, address: \"127.0.0.1:9001\"", "name: web-1"));
    assert_eq!(
        e,
        vec!["tether.pools.primary.endpoints[0].address: missing"]
    );

    let e = errors(&MINIMAL.replace("[primary]", "[primary, secndary]"));
    assert_eq!(
        e,
        vec![r#"tether.load_balancers["*"].default_pools[1]: no pool named "secndary""#]
    );

    let e = errors(&MINIMAL.replace("    primary:\n", "    primary:\n      monitor: web2\n"));
    assert_eq!(
        e,
        vec![r#"tether.pools.primary.monitor: no monitor named "web2""#]
    );

    let e = errors(&MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\" }\n        - { name: web-1, address: \"127.0.0.1:9003\" }\n",
        ));
    assert_eq!(
        e,
        vec![
            r#"tether.pools.primary.endpoints[2].name: duplicate endpoint name "web-1" (also endpoints[0])"#
        ]
    );
}

#[test]
fn many_errors_at_once_in_document_order() {
    let yaml = r#"
threads: 2
tether:
  listeners:
    - address: "localhost:8080"
  max_sessions: 0
  load_balancers:
    "*":
      default_pools: [primary, nope]
      session_affinity: cookie
      session_affinity_ttl: 10
      colour: blue
  pools:
    primary:
      minimum_origins: 5
      endpoints:
        - { name: web-1, address: "127.0.0.1:9001", weight: 1.5, wieght: 1 }
        - { address: "127.0.0.1:9002", enabled: "yes" }
  monitors:
    web: { interval: 1, timeout: 2, retries: 9 }
"#;
    assert_eq!(
            errors(yaml),
            vec![
                r#"tether.listeners[0].address: must be an IP address and port such as "0.0.0.0:8080" or "[::1]:8080", got "localhost:8080""#,
                "tether.max_sessions: must be between 1 and 100000000, got 0",
                r#"tether.load_balancers["*"].default_pools[1]: no pool named "nope""#,
                r#"tether.load_balancers["*"].session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie, got 10"#,
                r#"tether.load_balancers["*"].colour: unknown key (expected one of: enabled, default_pools, fallback_pool, steering_policy, random_steering, session_affinity, session_affinity_ttl, session_affinity_attributes, adaptive_routing, always_use_https, rules)"#,
                "tether.pools.primary.minimum_origins: must be between 1 and 2 (the number of endpoints), got 5",
                "tether.pools.primary.endpoints[0].weight: must be between 0 and 1, got 1.5",
                "tether.pools.primary.endpoints[0].wieght: unknown key (expected one of: name, address, weight, enabled, header, server_name)",
                r#"tether.pools.primary.endpoints[1].enabled: expected a boolean, got a string ("yes")"#,
                "tether.pools.primary.endpoints[1].name: missing",
                "tether.monitors.web.timeout: must not exceed interval (1), got 2",
                "tether.monitors.web.retries: must be between 0 and 5, got 9",
            ]
        );
}

#[test]
fn pingora_key_errors() {
    let e = errors(&format!("threads: many\n{MINIMAL}"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(r#"threads: invalid type: string "many", expected"#),
        "{e:?}"
    );
    // Pingora and tether errors together, in document order.
    let e = errors(&format!(
        "threads: 0\nwork_stealing: sometimes\n{}",
        MINIMAL.replace("[primary]", "[]")
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("work_stealing: "), "{e:?}");
    assert_eq!(
        e[1],
        r#"tether.load_balancers["*"].default_pools: must list at least one pool"#
    );
    let e = errors(&format!("threads: 0\n{MINIMAL}"));
    assert_eq!(e, vec!["threads: must be at least 1, got 0"]);
    let e = errors(&format!("max_blocking_threads: 0\n{MINIMAL}"));
    assert_eq!(e, vec!["max_blocking_threads: must be greater than zero"]);
    // Unknown top-level keys belong to Pingora, which ignores them.
    ok(&format!("some_other_key: 1\n{MINIMAL}"));
}

#[test]
fn file_level_errors() {
    assert_eq!(
        errors("threads: 2\n"),
        vec!["tether: missing: the file needs a tether: section"]
    );
    let e = errors("tether: [1\n");
    assert!(
        e[0].starts_with("invalid YAML: ") && e[0].contains("line"),
        "{e:?}"
    );
    let e = errors("- 1\n");
    assert_eq!(
        e,
        vec!["the file must be a mapping of keys (Pingora's and tether:), got a list"]
    );
    assert_eq!(
        errors("tether:\n"),
        vec!["tether: expected a mapping, got null"]
    );
    let e = load_file(Path::new("/nonexistent/tether.yaml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].path, "");
    assert!(
        e.0[0].message.contains("\"/nonexistent/tether.yaml\""),
        "{e}"
    );
    assert_eq!(
        errors("tether: {}\n"),
        vec![
            "tether.listeners: missing",
            "tether.pools: missing",
            "tether.load_balancers: missing",
        ]
    );
}

#[test]
fn a_state_file_directory_that_cannot_be_written_is_an_error() {
    // /proc refuses new files even to root.
    let yaml = MINIMAL.replace(
        "  load_balancers:",
        "  state_file: /proc/tether-state.json\n  load_balancers:",
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(r#"tether.state_file: directory "/proc" is not writable ("#)
            && e[0].ends_with("): run-time changes could not be made durable"),
        "{e:#?}"
    );
}

#[test]
fn listeners_files_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "  \n").unwrap();
    let yaml = format!(
        r#"
tether:
  listeners:
    - address: "0.0.0.0:8080"
    - address: "0.0.0.0:8080"
      tls: {{ cert_path: /nonexistent/cert.pem, key_path: conf/example-key.pem }}
  admin: {{ address: "0.0.0.0:8080", token_file: "{token}" }}
  cookie_keys_file: /nonexistent/keys
  state_file: /nonexistent/dir/state.json
  load_balancers:
    "*": {{ default_pools: [primary] }}
  pools:
    primary:
      endpoints:
        - {{ name: "web 1", address: "no-such-host.invalid:80" }}
        - {{ name: b, address: "10.0.0.1" }}
        - {{ name: c, address: "10.0.0.1:0" }}
"#,
        token = token.display()
    );
    let e = errors(&yaml);
    let expected_prefixes = [
        r#"tether.listeners[1].address: duplicate listener address "0.0.0.0:8080" (also listeners[0])"#,
        r#"tether.listeners[1].tls.cert_path: cannot read "/nonexistent/cert.pem": "#,
        r#"tether.admin.address: same address as listeners[0], got "0.0.0.0:8080""#,
        r#"tether.admin.token_file: the token file "#,
        r#"tether.cookie_keys_file: cannot read "/nonexistent/keys": "#,
        r#"tether.state_file: directory "/nonexistent/dir" does not exist"#,
        r#"tether.pools.primary.endpoints[0].name: must be non-empty and use only letters"#,
        r#"tether.pools.primary.endpoints[0].address: cannot resolve "no-such-host.invalid:80": "#,
        r#"tether.pools.primary.endpoints[1].address: must be "IP:port" or "hostname:port""#,
        r#"tether.pools.primary.endpoints[2].address: the port must not be 0"#,
    ];
    assert_eq!(e.len(), expected_prefixes.len(), "{e:#?}");
    for (got, want) in e.iter().zip(expected_prefixes) {
        assert!(
            got.starts_with(want),
            "{got}\n  does not start with\n{want}"
        );
    }
}

/// `tls.certificates`, several certificates chosen by SNI; `cert_path` and
/// `key_path` the one-certificate shorthand; the two forms not together.
#[test]
fn listener_certificates_list_or_shorthand() {
    let with_tls = |tls: &str| {
        MINIMAL.replace(
            "    - address: \"127.0.0.1:8080\"\n",
            &format!("    - address: \"127.0.0.1:8080\"\n      tls: {tls}\n"),
        )
    };
    let (cert, key) = ("conf/example-cert.pem", "conf/example-key.pem");
    let loaded = ok(&with_tls(&format!(
        "{{ certificates: [{{ cert_path: {cert}, key_path: {key} }}, {{ cert_path: {key}, key_path: {cert} }}] }}"
    )));
    let files = |c: &str, k: &str| CertificateFiles {
        cert_path: PathBuf::from(c),
        key_path: PathBuf::from(k),
    };
    let tls = loaded.tether.listeners[0].tls.clone().unwrap();
    assert_eq!(tls, Tls::list(vec![files(cert, key), files(key, cert)]));
    assert_eq!(
        tls.key_path("tether.listeners[0].tls", 1, "key_path"),
        "tether.listeners[0].tls.certificates[1].key_path"
    );
    let one = ok(&with_tls(&format!(
        "{{ cert_path: {cert}, key_path: {key} }}"
    )));
    let tls = one.tether.listeners[0].tls.clone().unwrap();
    assert_eq!(tls, Tls::single(PathBuf::from(cert), PathBuf::from(key)));
    assert_eq!(
        tls.key_path("tether.listeners[0].tls", 0, "key_path"),
        "tether.listeners[0].tls.key_path"
    );

    let both = errors(&with_tls(&format!(
        "{{ key_path: {key}, certificates: [{{ cert_path: {cert}, key_path: {key} }}] }}"
    )));
    assert_eq!(
        both,
        ["tether.listeners[0].tls.key_path: give either cert_path and key_path (one certificate) or tether.listeners[0].tls.certificates (several), not both"]
    );
    assert_eq!(
        errors(&with_tls("{ certificates: [] }")),
        ["tether.listeners[0].tls.certificates: must list at least one certificate"]
    );
    let missing = errors(&with_tls(&format!(
        "{{ certificates: [{{ cert_path: {cert} }}, {{ cert_path: /nonexistent.pem, key_path: {key} }}] }}"
    )));
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert_eq!(
        missing[0],
        "tether.listeners[0].tls.certificates[0].key_path: missing"
    );
    assert!(
        missing[1].starts_with(
            "tether.listeners[0].tls.certificates[1].cert_path: cannot read \"/nonexistent.pem\""
        ),
        "{missing:#?}"
    );
}

#[test]
fn endpoint_header_and_random_steering() {
    let yaml = MINIMAL
            .replace(
                "{ name: web-1, address: \"127.0.0.1:9001\" }",
                "{ name: web-1, address: \"127.0.0.1:9001\", header: { Host: [a, b], X-Other: [c] } }",
            )
            .replace(
                "      default_pools: [primary]\n",
                "      default_pools: [primary]\n      random_steering: { default_weight: 2, pool_weights: { ghost: 0.5, primary: -1 } }\n",
            );
    assert_eq!(
            errors(&yaml),
            vec![
                r#"tether.load_balancers["*"].random_steering.default_weight: must be between 0 and 1, got 2"#,
                r#"tether.load_balancers["*"].random_steering.pool_weights.ghost: no pool named "ghost""#,
                r#"tether.load_balancers["*"].random_steering.pool_weights.primary: must be between 0 and 1, got -1"#,
                "tether.pools.primary.endpoints[0].header.Host: must be a list of exactly one host, got 2 items",
                "tether.pools.primary.endpoints[0].header.X-Other: unknown key (expected one of: Host)",
            ]
        );
}

#[test]
fn invalid_pools_are_not_reported_twice() {
    // The pool exists but is invalid: the load balancer's reference is fine.
    let e = errors(&MINIMAL.replace("name: web-1, ", "name: web-1, weight: 9, "));
    assert_eq!(
        e,
        vec!["tether.pools.primary.endpoints[0].weight: must be between 0 and 1, got 9"]
    );
    // No pools at all: only that is reported.
    let e = errors(&MINIMAL.replace("  pools:\n    primary:", "  pols:\n    primary:"));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("tether.pols: unknown key"), "{e:?}");
    assert_eq!(e[1], "tether.pools: missing");
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let yaml = r#"
tether:
  listeners: [{ address: "127.0.0.1:8080" }]
  load_balancers:
    "*": &lb { default_pools: [primary] }
    a.example: { <<: *lb, enabled: false }
  pools:
    primary: { endpoints: [{ name: web-1, address: "127.0.0.1:9001" }] }
"#;
    let t = ok(yaml).tether;
    assert!(!t.load_balancers["a.example"].enabled);
    assert_eq!(t.load_balancers["a.example"].default_pools, vec!["primary"]);
}

/// The reference file, cut at every line and at many byte offsets: the
/// loader answers with a config or with errors, never a panic.
#[test]
fn truncated_reference_never_panics() {
    let text = std::fs::read_to_string(conf_path("tether.yaml")).unwrap();
    let mut cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    cuts.extend((0..text.len()).step_by(7));
    for cut in cuts {
        if let Err(errors) = load_str(&text[..text.floor_char_boundary(cut)]) {
            assert!(!errors.0.is_empty(), "an Err carries at least one error");
            assert!(errors.0.iter().all(|e| !e.message.is_empty()));
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = load_str(&text);
    }

    /// YAML-shaped noise under `tether:`: keys and values drawn from the
    /// real vocabulary, so the walk goes deep before it fails.
    #[test]
    fn yaml_shaped_noise_never_panics(
        lines in proptest::collection::vec(
            (0usize..6, "(listeners|load_balancers|pools|monitors|endpoints|weight|address|default_pools|session_affinity|headers|-|\\*|x|1e9|-3|\\[\\]|\\{\\}|\"\"|null|true|0\\.5|127\\.0\\.0\\.1:1)",
             "(: |:|- |, |)",
             "(\\[a, b\\]|\\{k: v\\}|1|-1|2\\.5|x|\"\\*\"|null|~|)"),
            0..40,
        )
    ) {
        let mut text = String::from("version: 1\ntether:\n");
        for (indent, key, sep, value) in lines {
            text.push_str(&" ".repeat(2 + indent * 2));
            text.push_str(&key);
            text.push_str(&sep);
            text.push_str(&value);
            text.push('\n');
        }
        let _ = load_str(&text);
    }
}

/// Every whole file the repository shows: `conf/*.yaml` and each ```yaml block
/// of `docs/*.md` with a top-level `tether:` key (the blocks
/// `scripts/docs_check.sh` passes to `tether -t`).
fn shown_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["conf", "docs"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            match path.extension().and_then(|e| e.to_str()) {
                Some("yaml") => files.push((name, text)),
                Some("md") => {
                    let mut block: Option<(usize, String)> = None;
                    for (i, line) in text.lines().enumerate() {
                        match &mut block {
                            None if line.trim_end() == "```yaml" => {
                                block = Some((i + 2, String::new()))
                            }
                            Some((start, body)) if line.starts_with("```") => {
                                if body.lines().any(|l| l == "tether:") {
                                    files.push((format!("{name}:{start}"), std::mem::take(body)));
                                }
                                block = None;
                            }
                            Some((_, body)) => {
                                body.push_str(line);
                                body.push('\n');
                            }
                            None => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    files
}

/// The model is the one description of the file's keys (issue 18): written
/// out (serde, `model.rs`) it is a file the reader reads back as the same
/// model, for every file the repository shows.
#[test]
fn model_round_trips() {
    // Tests run in the repository's root, where the files' relative paths point.
    let mut checked = 0;
    for (name, text) in shown_files() {
        let loaded = match load_str(&text) {
            Ok(loaded) => loaded,
            Err(e) if name.starts_with("conf/") => panic!("{name}: {e}"),
            Err(_) => continue, // an example naming files of its reader's machine
        };
        let written = serde_yaml::to_string(&BTreeMap::from([("tether", &loaded.tether)]))
            .unwrap_or_else(|e| panic!("{name}: the model does not serialise: {e}"));
        let again = load_str(&written)
            .unwrap_or_else(|e| panic!("{name}: written back, it is refused: {e}\n{written}"));
        assert_eq!(
            again.tether, loaded.tether,
            "{name}: written back:\n{written}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files shown load here");
}

/// The defaults the model writes nothing for are the reader's: a written
/// default model, given a pool and a load balancer, reads back as itself.
#[test]
fn model_defaults_are_the_readers() {
    let mut config = Config::default();
    config.listeners.push(Listener {
        address: "127.0.0.1:8080".into(),
        tls: None,
    });
    let mut pool = Pool {
        name: "p".into(),
        ..Pool::default()
    };
    pool.endpoints.push(Endpoint::at("e", "127.0.0.1:9000"));
    config.pools.insert("p".into(), pool);
    config.load_balancers.insert(
        "*".into(),
        LoadBalancer {
            name: "*".into(),
            default_pools: vec!["p".into()],
            ..LoadBalancer::default()
        },
    );
    config.monitors.insert(
        "m".into(),
        Monitor {
            name: "m".into(),
            ..Monitor::default()
        },
    );
    let written = serde_yaml::to_string(&BTreeMap::from([("tether", &config)])).unwrap();
    assert!(!written.contains("max_sessions"), "{written}");
    let again = load_str(&written)
        .unwrap_or_else(|e| panic!("{e}\n{written}"))
        .tether;
    let resolved = again.pools["p"].endpoints[0].socket_addr;
    config.pools.get_mut("p").unwrap().endpoints[0].socket_addr = resolved;
    assert_eq!(again, config, "{written}");
}

/// Each object written empty reads as the model's `Default`: the defaults the
/// model leaves out of a file are the reader's, key by key.
#[test]
fn empty_objects_read_as_the_model_defaults() {
    let file = "tether:
  listeners: [{address: 127.0.0.1:8080}]
  upstream_timeouts: {}
  client_limits: {}
  access_log: {}
  load_balancers:
    '*': {default_pools: [p], random_steering: {}, session_affinity_attributes: {}, adaptive_routing: {}}
  pools:
    p:
      endpoints: [{name: e, address: 127.0.0.1:9000}]
      load_shedding: {}
      outlier_detection: {}
  monitors:
    m: {}
";
    let t = load_str(file).unwrap_or_else(|e| panic!("{e}")).tether;
    assert_eq!(t.upstream_timeouts, UpstreamTimeouts::default());
    assert_eq!(t.client_limits, ClientLimits::default());
    assert_eq!(t.access_log, AccessLog::default());
    assert_eq!(
        (t.max_sessions, t.dns_refresh),
        (DEFAULT_MAX_SESSIONS, DEFAULT_DNS_REFRESH)
    );
    let lb = &t.load_balancers["*"];
    assert_eq!(
        (
            &lb.random_steering,
            &lb.session_affinity_attributes,
            &lb.adaptive_routing
        ),
        (
            &RandomSteering::default(),
            &SessionAffinityAttributes::default(),
            &AdaptiveRouting::default()
        )
    );
    let p = &t.pools["p"];
    assert_eq!(p.load_shedding, LoadShedding::default());
    assert_eq!(p.outlier_detection, Some(OutlierDetection::default()));
    assert_eq!(
        t.monitors["m"],
        Monitor {
            name: "m".into(),
            ..Monitor::default()
        }
    );
}

#[test]
fn upgraded_connections_close_grace() {
    let t = load_str(&(MINIMAL.to_string() + "  upgraded_connections: { close_grace: 2.5 }\n"))
        .unwrap_or_else(|e| panic!("{e}"))
        .tether;
    assert_eq!(
        t.upgraded_connections.close_grace,
        Duration::from_millis(2500)
    );
    let t = load_str(MINIMAL).unwrap().tether;
    assert_eq!(
        t.upgraded_connections.close_grace,
        Duration::ZERO,
        "at once"
    );
    assert_eq!(
        errors(&(MINIMAL.to_string() + "  upgraded_connections: { close_grace: -1 }\n")),
        vec!["tether.upgraded_connections.close_grace: must be between 0 and 86400, got -1"]
    );
    assert_eq!(
        errors(&(MINIMAL.to_string() + "  upgraded_connections: { grace: 1 }\n")),
        vec!["tether.upgraded_connections.grace: unknown key (expected one of: close_grace)"]
    );
}
