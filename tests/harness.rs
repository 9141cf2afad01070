//! Tests of the test harness itself (`tests/support`): they need no working proxy.
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn refused(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

#[test]
fn upstream_serves_its_name() {
    let up = Upstream::start("web-1");
    assert!(up.addr().ip().is_loopback());
    assert_ne!(up.port(), 0);
    assert_eq!(up.name(), "web-1");

    let (status, headers, body) = get(&client(), &up.url("/any/path?q=1"), "example.com");
    assert_eq!(status, 200);
    assert_eq!(body, "web-1");
    assert_eq!(upstream_of(&headers).as_deref(), Some("web-1"));
    assert_eq!(up.requests(), 1);
    assert_eq!(up.health_checks(), 0);
}

#[test]
fn upstream_health_flips() {
    let up = Upstream::start("web-1");
    let c = client();

    let (status, _, body) = get(&c, &up.url("/health"), "localhost");
    assert_eq!((status, body.as_str()), (200, "ok"));

    up.set_healthy(false);
    assert!(!up.is_healthy());
    let (status, _, body) = get(&c, &up.url("/health"), "localhost");
    assert_eq!((status, body.as_str()), (503, "unhealthy"));

    // Only /health is affected.
    let (status, _, body) = get(&c, &up.url("/"), "localhost");
    assert_eq!((status, body.as_str()), (200, "web-1"));

    up.set_healthy(true);
    let (status, _, body) = get(&c, &up.url("/health?probe=1"), "localhost");
    assert_eq!((status, body.as_str()), (200, "ok"));

    assert_eq!(up.health_checks(), 3);
    assert_eq!(up.requests(), 1);
}

#[test]
fn upstream_echo_reports_the_request() {
    let up = Upstream::start("echo-1");
    let (status, headers, body) = get_h(
        &client(),
        &up.url("/echo?a=1&b=two"),
        &[
            ("host", "www.example.com"),
            ("x-test", "first"),
            ("X-Test", "second"),
            ("cookie", "__cflb=abc; other=1"),
            ("x-forwarded-for", "192.0.2.1"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(upstream_of(&headers).as_deref(), Some("echo-1"));

    let json: serde_json::Value = serde_json::from_str(&body).expect("echo body is JSON");
    assert_eq!(json["upstream"], "echo-1");
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/echo?a=1&b=two");
    let h = &json["headers"];
    assert_eq!(h["host"], serde_json::json!(["www.example.com"]));
    assert_eq!(h["x-test"], serde_json::json!(["first", "second"]));
    assert_eq!(h["cookie"], serde_json::json!(["__cflb=abc; other=1"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["192.0.2.1"]));
}

#[test]
fn upstream_echo_any_method_with_body() {
    let up = Upstream::start("echo-2");
    let (status, _, body) = send(
        &client(),
        reqwest::Method::POST,
        &up.url("/echo"),
        &[("content-type", "text/plain")],
        "hello",
    );
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("echo body is JSON");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/echo");
    assert_eq!(json["body"], "hello");
}

#[test]
fn upstream_set_cookie_path() {
    let up = Upstream::start("web-9");
    let (status, headers, body) = get(&client(), &up.url("/set-cookie"), "localhost");
    assert_eq!((status, body.as_str()), (200, "web-9"));
    assert_eq!(
        set_cookie_value(&headers, "upstream").as_deref(),
        Some("web-9")
    );
    assert_eq!(
        set_cookie_line(&headers, "upstream").as_deref(),
        Some("upstream=web-9; Path=/")
    );
}

#[test]
fn upstream_delay_applies_to_requests_not_health() {
    let up = Upstream::start("slow");
    let c = client();
    let delay = Duration::from_millis(300);
    up.set_delay(delay);
    let started = Instant::now();
    let (status, _, body) = get(&c, &up.url("/"), "localhost");
    assert_eq!((status, body.as_str()), (200, "slow"));
    assert!(
        started.elapsed() >= delay,
        "answered after {:?}",
        started.elapsed()
    );

    // A delay far longer than the client timeout: /health still answers.
    up.set_delay(Duration::from_secs(60));
    let (status, _, _) = get(&c, &up.url("/health"), "localhost");
    assert_eq!(status, 200);

    up.set_delay(Duration::ZERO);
    let (status, _, _) = get(&c, &up.url("/"), "localhost");
    assert_eq!(status, 200);
    assert_eq!(up.requests(), 2);
}

#[test]
fn upstream_stop_refuses_connections_and_closes_kept_alive_ones() {
    let up = Upstream::start("web-1");
    let addr = up.addr();

    // A kept-alive connection that has served one request.
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).expect("read the response");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("web-1"), "{head}");

    up.stop();
    assert!(!up.is_running());
    up.stop(); // idempotent

    // The server closed the kept-alive connection: EOF (or a reset), not a timeout.
    match conn.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected bytes after stop: {:?}", &buf[..n]),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "connection still open after stop: {e}"
        ),
    }
    assert!(refused(addr), "{addr} still accepts after stop()");
}

#[test]
fn upstream_stop_aborts_a_request_in_progress() {
    let up = Upstream::start("slow");
    up.set_delay(Duration::from_secs(60));
    let mut conn = TcpStream::connect(up.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || up.requests() == 1));

    let started = Instant::now();
    up.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop() waited for the delayed request"
    );
    let mut buf = [0u8; 64];
    assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn upstream_restart_serves_again_on_the_same_port() {
    let up = Upstream::start("web-2");
    let addr = up.addr();
    let c = client();
    assert_eq!(get(&c, &up.url("/"), "localhost").0, 200);

    up.stop();
    assert!(refused(addr));

    up.restart();
    assert!(up.is_running());
    assert_eq!(up.addr(), addr);
    let (status, headers, body) = get(&c, &up.url("/"), "localhost");
    assert_eq!((status, body.as_str()), (200, "web-2"));
    assert_eq!(upstream_of(&headers).as_deref(), Some("web-2"));
    // Counters survive the restart.
    assert_eq!(up.requests(), 2);

    // restart() while running stops first.
    up.restart();
    assert_eq!(get(&c, &up.url("/"), "localhost").0, 200);
    assert_eq!(up.requests(), 3);
}

#[test]
fn upstream_drop_stops_it() {
    let addr = {
        let up = Upstream::start("gone");
        assert!(accepts(up.addr()));
        up.addr()
    };
    assert!(refused(addr), "{addr} still accepts after drop");
}

#[test]
fn upstream_start_on_a_given_address() {
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let up = Upstream::start_on("fixed", addr);
    assert_eq!(up.addr(), addr);
    assert_eq!(get(&client(), &up.url("/"), "localhost").2, "fixed");
    // The address is taken now.
    assert!(Upstream::try_start_on("twin", addr).is_err());
}

#[test]
fn upstream_counts_requests_on_one_kept_alive_connection() {
    let up = Upstream::start("web-3");
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, &up.url("/x"), "localhost").0, 200);
    }
    get(&c, &up.url("/health"), "localhost");
    assert_eq!(up.requests(), 5);
    assert_eq!(up.health_checks(), 1);
    assert_eq!(
        up.connections(),
        1,
        "the client's connection was not kept alive"
    );

    up.reset_counters();
    assert_eq!(
        (up.requests(), up.health_checks(), up.connections()),
        (0, 0, 0)
    );
}

#[test]
fn upstream_counts_concurrent_requests() {
    let up = Upstream::start("busy");
    up.set_delay(Duration::from_millis(50));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let c = client();
                for _ in 0..5 {
                    assert_eq!(get(&c, &up.url("/"), "localhost").0, 200);
                }
            });
        }
    });
    assert_eq!(up.requests(), 20);
}

#[tokio::test]
async fn upstream_works_from_a_tokio_test() {
    let up = Upstream::start("async-1");
    let response = async_client()
        .get(up.url("/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), "async-1");
    up.stop();
    assert!(refused(up.addr()));
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the free port binds");
}

#[test]
fn reindent_strips_common_indentation() {
    let text = "
        listeners:
          - address: \"127.0.0.1:1\"

        max_sessions: 5
    ";
    assert_eq!(
        reindent(text, 2),
        "\n  listeners:\n    - address: \"127.0.0.1:1\"\n\n  max_sessions: 5\n\n"
    );
}

#[test]
fn the_config_builder_writes_the_yaml_keys() {
    let a = Upstream::healthy("web-1");
    let b = Upstream::healthy("web-2");
    let s = Upstream::healthy("spare-1");
    let dir = tempfile::TempDir::new().unwrap();
    let tls = Tls::self_signed(dir.path());
    let cfg = tether()
        .listener(18080)
        .tls_listener(18443, &tls)
        .admin(19180)
        .decision_header()
        .max_sessions(1000)
        .upstream_read_timeout(0.5)
        .load_balancer(
            "*",
            lb(["primary"])
                .affinity(Affinity::Cookie)
                .ttl(3600)
                .drain(30)
                .zero_downtime_failover(Failover::Sticky)
                .samesite(SameSite::None)
                .secure(Secure::Always)
                .fallback("spare"),
        )
        .load_balancer(
            "www.example.com",
            lb(["primary", "spare"])
                .steering(Steering::Random)
                .random_steering(1.0, &[("spare", 0.25)])
                .failover_across_pools(true)
                .always_use_https(true)
                .enabled(false),
        )
        .load_balancer("off.test", lb(["primary"]).steering(Steering::Unset))
        .load_balancer(
            "h.test",
            lb(["primary"])
                .affinity(Affinity::Header)
                .headers(["X-User", "cookie:sid"])
                .require_all_headers(true),
        )
        .pool(
            "primary",
            pool([&a])
                .and(endpoint(&b).weight(0.5).enabled(false).host("app.internal"))
                .monitor("fast")
                .origin_steering(OriginSteering::Hash)
                .minimum_origins(2),
        )
        .pool("spare", pool([&s]).monitor("fast").enabled(true))
        .monitor("fast", Monitor::every(0.2).consecutive_down(2))
        .monitor("tcp", Monitor::tcp().interval(1.0));
    assert_eq!(cfg.listen(), "127.0.0.1:18080");

    let yaml = cfg.yaml();
    let v: serde_yaml::Value =
        serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(v["listeners"][0]["address"], "127.0.0.1:18080");
    assert!(v["listeners"][0].get("tls").is_none(), "{yaml}");
    assert_eq!(
        v["listeners"][1]["tls"]["cert_path"],
        tls.cert_path.as_str()
    );
    assert_eq!(v["admin"]["address"], "127.0.0.1:19180");
    assert!(
        v["admin"].get("token_file").is_none(),
        "None is left out: {yaml}"
    );
    assert_eq!(v["decision_header"], true);
    assert_eq!(v["max_sessions"], 1000);
    assert_eq!(v["upstream_timeouts"]["read"], 0.5);
    assert!(v.get("state_file").is_none(), "{yaml}");
    let star = &v["load_balancers"]["*"];
    assert_eq!(star["default_pools"][0], "primary");
    assert_eq!(star["session_affinity"], "cookie");
    assert_eq!(star["session_affinity_ttl"], 3600);
    assert_eq!(star["fallback_pool"], "spare");
    let attrs = &star["session_affinity_attributes"];
    assert_eq!(attrs["drain_duration"], 30);
    assert_eq!(attrs["zero_downtime_failover"], "sticky");
    assert_eq!(attrs["samesite"], "None");
    assert_eq!(attrs["secure"], "Always");
    let www = &v["load_balancers"]["www.example.com"];
    assert_eq!(www["default_pools"][1], "spare");
    assert_eq!(www["steering_policy"], "random");
    assert_eq!(www["random_steering"]["pool_weights"]["spare"], 0.25);
    assert_eq!(www["adaptive_routing"]["failover_across_pools"], true);
    assert_eq!(www["always_use_https"], true);
    assert_eq!(www["enabled"], false);
    assert!(www.get("session_affinity").is_none(), "{yaml}");
    assert_eq!(v["load_balancers"]["off.test"]["steering_policy"], "");
    let h = &v["load_balancers"]["h.test"]["session_affinity_attributes"];
    assert_eq!(h["headers"][1], "cookie:sid");
    assert_eq!(h["require_all_headers"], true);
    let primary = &v["pools"]["primary"];
    assert_eq!(primary["monitor"], "fast");
    assert_eq!(primary["origin_steering"]["policy"], "hash");
    assert_eq!(primary["minimum_origins"], 2);
    assert_eq!(primary["endpoints"][0]["name"], "web-1");
    assert!(primary["endpoints"][0].get("weight").is_none(), "{yaml}");
    let web2 = &primary["endpoints"][1];
    assert_eq!(web2["name"], "web-2");
    assert_eq!(web2["address"], b.addr().to_string().as_str());
    assert_eq!(web2["weight"], 0.5);
    assert_eq!(web2["enabled"], false);
    assert_eq!(web2["header"]["Host"][0], "app.internal");
    assert!(
        v["pools"]["spare"].get("enabled").is_none(),
        "the reader's default is left out: {yaml}"
    );
    let fast = &v["monitors"]["fast"];
    assert_eq!(
        (
            &fast["type"],
            &fast["path"],
            &fast["interval"],
            &fast["retries"]
        ),
        (
            &serde_yaml::Value::from("http"),
            &serde_yaml::Value::from("/health"),
            &serde_yaml::Value::from(0.2),
            &serde_yaml::Value::from(0)
        )
    );
    assert_eq!(fast["consecutive_down"], 2);
    assert_eq!(v["monitors"]["tcp"]["type"], "tcp");
    assert_eq!(v["monitors"]["tcp"]["interval"], 1, "{yaml}");
    assert_eq!(v["monitors"]["tcp"]["timeout"], 1, "{yaml}");

    // The harness finds the addresses to wait for.
    assert_eq!(
        tether::first_listener(&yaml).as_deref(),
        Some("127.0.0.1:18080")
    );
    assert_eq!(
        tether::admin_address(&yaml).as_deref(),
        Some("127.0.0.1:19180")
    );

    // And Tether itself reads every key of it.
    let (code, out, err) = cfg.check();
    assert_eq!((code, out.trim()), (0, "configuration OK"), "{err}\n{yaml}");
}

#[test]
fn the_named_fakes_behave_as_named() {
    let healthy = Upstream::healthy("h");
    assert_eq!(get(&client(), &healthy.url("/"), "x").2, "h");

    // Refusing: nothing listens on its port, until it is restarted.
    let refusing = Upstream::refusing("r");
    assert!(refused(refusing.addr()));
    refusing.restart();
    assert_eq!(get(&client(), &refusing.url("/"), "x").2, "r");

    // Slow: answers, after the delay.
    let delay = Duration::from_millis(300);
    let slow = Upstream::slow("s", delay);
    let started = Instant::now();
    assert_eq!(get(&client(), &slow.url("/"), "x").2, "s");
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    // Black hole: accepts, reads nothing, answers nothing, until stopped.
    let hole = Upstream::black_hole("b");
    let mut conn = TcpStream::connect(hole.addr()).expect("the black hole accepts");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || hole.connections() == 1));
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("the black hole answered {:?}", &buf[..n]),
    }
    assert_eq!(hole.requests(), 0);
    hole.stop();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        matches!(conn.read(&mut buf), Ok(0) | Err(_)),
        "stop() closes the held connection"
    );
    assert!(refused(hole.addr()));
}

#[test]
fn connect_addr_maps_unspecified_to_loopback() {
    assert_eq!(connect_addr("0.0.0.0:8080").to_string(), "127.0.0.1:8080");
    assert_eq!(connect_addr("[::]:8080").to_string(), "[::1]:8080");
    assert_eq!(connect_addr("127.0.0.1:1").to_string(), "127.0.0.1:1");
}

/// A tether that cannot serve this config must make `start` fail loudly with its
/// logs, never hang. (Holds whether or not the binary works yet: a config with an
/// unknown key must not start a server.)
#[test]
#[should_panic(expected = "tether exited")]
fn tether_start_reports_an_early_exit() {
    let port = free_port();
    TetherProc::start(&format!(
        "listeners:\n  - address: \"127.0.0.1:{port}\"\nno_such_key: 1\n"
    ));
}

/// A key the builder has no typed field for is set by name (`SetKey::set`),
/// in any section, and reaches the configuration reader as written: a key
/// the reader learns is usable from the tests with no edit of the builder.
#[test]
fn a_key_is_set_by_name_in_any_section() {
    let up = Upstream::start("a");
    let conf = tether()
        .listener(free_port())
        .set("max_sessions", 5000)
        .client_limits(ClientLimits::default().set("min_body_rate", 0))
        .load_balancer("*", lb(["p"]).set("always_use_https", false))
        .pool("p", pool([&up]).set("minimum_origins", 1));
    let yaml = conf.yaml();
    for line in [
        "max_sessions: 5000",
        "min_body_rate: 0",
        "always_use_https: false",
        "minimum_origins: 1",
    ] {
        assert!(yaml.contains(line), "{line} in:\n{yaml}");
    }
    let (code, _, err) = conf.check();
    assert_eq!(code, 0, "{err}");
    // What the reader does not know is refused under its key path.
    let (code, _, err) = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]).set("no_such_key", 1))
        .pool("p", pool([&up]))
        .check();
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"tether.load_balancers["*"].no_such_key: unknown key"#),
        "{err}"
    );
}

/// The builder builds the model's own values (`tether::config`, issue 18):
/// any model field, even one no chained method sets, is set with a closure,
/// and the file written reads back as exactly the model built.
#[test]
fn the_builder_writes_the_model_it_builds() {
    let up = Upstream::start("a");
    let conf = tether()
        .listener(free_port())
        .with(|t| t.upstream_timeouts.connect = Duration::from_millis(1500))
        .load_balancer(
            "*",
            lb(["p"])
                .affinity(Affinity::Cookie)
                .with(|lb| lb.random_steering.default_weight = 0.5)
                .rule(rule("r", "").with(|r| {
                    r.overrides
                        .insert("session_affinity_ttl".into(), 7200.into());
                })),
        )
        .pool(
            "p",
            pool([endpoint(&up).with(|e| e.weight = 0.25)])
                .monitor("m")
                .with(|p| p.origin_steering = OriginSteering::LeastConnections),
        )
        .monitor(
            "m",
            Monitor::http("/health").with(|m| {
                m.port = up.addr().port();
                m.header
                    .insert("User-Agent".into(), vec!["tether-test".into()]);
            }),
        );
    let yaml = conf.yaml();
    for line in [
        "connect: 1.5",
        "default_weight: 0.5",
        "session_affinity_ttl: 7200",
        "weight: 0.25",
        "policy: least_connections",
        "User-Agent:",
    ] {
        assert!(yaml.contains(line), "{line} in:\n{yaml}");
    }
    let file = format!("tether:\n{}", indent(&yaml));
    let read = ::tether::config::load_str(&file)
        .unwrap_or_else(|e| panic!("{e}\n{file}"))
        .tether;
    let mut built = conf.model.clone();
    for (name, p) in &mut built.pools {
        for (e, read_e) in p.endpoints.iter_mut().zip(&read.pools[name].endpoints) {
            e.socket_addr = read_e.socket_addr; // resolved at load, not in the file
        }
    }
    // The reader fills in the type's default ttl that the builder left at zero.
    let star = built
        .load_balancers
        .get_mut("*")
        .expect("the load balancer");
    star.session_affinity_ttl = read.load_balancers["*"].session_affinity_ttl;
    assert_eq!(read, built, "{yaml}");
}

fn indent(yaml: &str) -> String {
    yaml.lines().map(|l| format!("  {l}\n")).collect()
}
