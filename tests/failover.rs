//! Health and failure (SPEC 3.2, 3.5, 4.4 first paragraph): monitors move
//! traffic between pools, the fallback pool serves when all are down, a
//! refused connection is retried once elsewhere, and the error statuses.

mod support;

use std::time::Duration;

use support::*;

const FAST_MONITOR: &str =
    "monitors:\n  fast: {path: /health, interval: 0.2, timeout: 0.2, retries: 0}\n";

fn listener(port: u16) -> String {
    format!("listeners:\n  - address: \"127.0.0.1:{port}\"\n")
}

fn answer(proxy: &TetherProc) -> (u16, String) {
    let (status, _, body) = get(&client(), &proxy.url("/"), "x");
    (status, body)
}

/// Waits (bounded) until `n` requests in a row are answered by `name`.
fn settles_on(proxy: &TetherProc, name: &str, n: usize) -> bool {
    let mut run = 0;
    wait_until(Duration::from_secs(10), || {
        let (status, body) = answer(proxy);
        if status == 200 && body == name {
            run += 1;
        } else {
            run = 0;
        }
        run >= n
    })
}

#[test]
fn monitor_moves_traffic_to_the_next_pool_and_back() {
    let primary = Upstream::start("primary-1");
    let secondary = Upstream::start("secondary-1");
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [primary, secondary]\npools:\n  primary:\n    monitor: fast\n    endpoints:\n{}  secondary:\n    monitor: fast\n    endpoints:\n{}{FAST_MONITOR}",
        listener(free_port()),
        endpoints_yaml(&[&primary], 6),
        endpoints_yaml(&[&secondary], 6)
    ));
    assert_eq!(answer(&proxy), (200, "primary-1".to_string()));

    primary.set_healthy(false);
    assert!(
        proxy.wait_for_log("endpoint primary-1", Duration::from_secs(5))
            && proxy.wait_for_log("is unhealthy", Duration::from_secs(5)),
        "no health change logged:\n{}",
        proxy.logs()
    );
    for _ in 0..20 {
        assert_eq!(answer(&proxy), (200, "secondary-1".to_string()));
    }
    assert!(
        proxy.logs().contains("status 503 is not expected"),
        "the reason is logged"
    );

    primary.set_healthy(true);
    assert!(proxy.wait_for_log("is healthy again", Duration::from_secs(5)));
    assert!(
        settles_on(&proxy, "primary-1", 10),
        "traffic did not return to primary"
    );
}

#[test]
fn minimum_origins_is_the_pool_health_threshold() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let other = Upstream::start("other");
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [pair, other]\npools:\n  pair:\n    minimum_origins: 2\n    monitor: fast\n    endpoints:\n{}  other:\n    endpoints:\n{}{FAST_MONITOR}",
        listener(free_port()),
        endpoints_yaml(&[&a, &b], 6),
        endpoints_yaml(&[&other], 6)
    ));
    let body = answer(&proxy).1;
    assert!(body == "a" || body == "b", "{body}");
    b.set_healthy(false);
    assert!(
        settles_on(&proxy, "other", 10),
        "one healthy endpoint of two is below minimum_origins 2"
    );
}

#[test]
fn fallback_pool_serves_with_its_health_ignored() {
    let primary = Upstream::start("primary-1");
    let fallback = Upstream::start("fallback-1");
    fallback.set_healthy(false);
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [primary]\n    fallback_pool: fallback\npools:\n  primary:\n    monitor: fast\n    endpoints:\n{}  fallback:\n    monitor: fast\n    endpoints:\n{}{FAST_MONITOR}",
        listener(free_port()),
        endpoints_yaml(&[&primary], 6),
        endpoints_yaml(&[&fallback], 6)
    ));
    assert!(proxy.wait_for_log("endpoint fallback-1", Duration::from_secs(5)));
    assert_eq!(answer(&proxy), (200, "primary-1".to_string()));
    primary.set_healthy(false);
    assert!(
        settles_on(&proxy, "fallback-1", 10),
        "the unhealthy fallback pool should still serve"
    );
}

#[test]
fn no_usable_endpoint_answers_503() {
    let a = Upstream::start("a");
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n      - {{name: a, address: \"{}\", enabled: false}}\n",
        listener(free_port()),
        a.addr()
    ));
    let (status, body) = answer(&proxy);
    assert_eq!(status, 503);
    assert!(body.contains("no usable endpoint"), "{body}");
    assert_eq!(a.requests(), 0);
}

#[test]
fn refused_connection_is_retried_on_another_endpoint() {
    let dead = Upstream::start("dead");
    let live = Upstream::start("live");
    dead.stop();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n{}",
        listener(free_port()),
        endpoints_yaml(&[&dead, &live], 6)
    ));
    // No monitor: both count as healthy, so random steering keeps picking the dead one.
    let client = client();
    for _ in 0..40 {
        let (status, _, body) = send(
            &client,
            reqwest::Method::POST,
            &proxy.url("/"),
            &[("host", "x")],
            "payload",
        );
        assert_eq!(
            (status, body.as_str()),
            (200, "live"),
            "POST too: nothing reached the endpoint"
        );
    }
    assert!(
        proxy.logs().contains("endpoint dead: connect failed"),
        "the retry is logged:\n{}",
        proxy.logs()
    );
}

#[test]
fn failover_crosses_pools_only_when_adaptive_routing_allows() {
    let dead = Upstream::start("dead");
    let live = Upstream::start("live");
    dead.stop();
    let config = |across: bool| {
        format!(
            "{}load_balancers:\n  \"*\":\n    default_pools: [first, second]\n    adaptive_routing: {{failover_across_pools: {across}}}\npools:\n  first:\n    endpoints:\n{}  second:\n    endpoints:\n{}",
            listener(free_port()),
            endpoints_yaml(&[&dead], 6),
            endpoints_yaml(&[&live], 6)
        )
    };
    let proxy = TetherProc::start(&config(false));
    let (status, body) = answer(&proxy);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream unreachable"), "{body}");
    drop(proxy);

    let proxy = TetherProc::start(&config(true));
    for _ in 0..10 {
        assert_eq!(answer(&proxy), (200, "live".to_string()));
    }
}

#[test]
fn every_endpoint_refusing_gives_502() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    a.stop();
    b.stop();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n{}",
        listener(free_port()),
        endpoints_yaml(&[&a, &b], 6)
    ));
    let (status, body) = answer(&proxy);
    assert_eq!(status, 502);
    assert!(body.contains("502") && !body.contains("panicked"), "{body}");
}

#[test]
fn upstream_timeout_gives_504_and_the_proxy_keeps_serving() {
    let stuck = Upstream::start("stuck");
    stuck.set_delay(Duration::from_secs(5));
    let proxy = TetherProc::start(&format!(
        "{}upstream_timeouts: {{read: 0.3}}\nload_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n{}",
        listener(free_port()),
        endpoints_yaml(&[&stuck], 6)
    ));
    let (status, body) = answer(&proxy);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("timed out"), "{body}");
    assert!(
        proxy.wait_for_log(
            "load balancer * pool p endpoint stuck",
            Duration::from_secs(5)
        ),
        "the error names what was involved:\n{}",
        proxy.logs()
    );
    stuck.set_delay(Duration::ZERO);
    assert!(
        wait_until(Duration::from_secs(5), || answer(&proxy)
            == (200, "stuck".to_string())),
        "the proxy stopped serving after a timeout"
    );
}

#[test]
fn tcp_monitor_marks_a_closed_port_down() {
    let gone = Upstream::start("gone");
    let live = Upstream::start("live");
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    monitor: tcp\n    endpoints:\n{}monitors:\n  tcp: {{type: tcp, interval: 0.2, timeout: 0.2, retries: 1}}\n",
        listener(free_port()),
        endpoints_yaml(&[&gone, &live], 6)
    ));
    gone.stop();
    assert!(
        proxy.wait_for_log("endpoint gone", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
    assert!(proxy.logs().contains("tcp connect"), "{}", proxy.logs());
    assert_eq!(
        live.health_checks(),
        0,
        "a tcp monitor sends no HTTP request"
    );
}

#[test]
fn http_monitor_checks_codes_body_method_and_headers() {
    let up = Upstream::start("checked");
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    monitor: strict\n    endpoints:\n{}monitors:\n  strict: {{path: /health, expected_codes: \"2xx\", expected_body: \"NOT-THERE\", interval: 0.2, timeout: 0.2, retries: 0, consecutive_down: 2}}\n",
        listener(free_port()),
        endpoints_yaml(&[&up], 6)
    ));
    assert!(
        proxy.wait_for_log("body does not contain", Duration::from_secs(5)),
        "{}",
        proxy.logs()
    );
    assert!(proxy.logs().contains("failed 2 time(s) in a row"));
    let (status, body) = answer(&proxy);
    assert_eq!(
        status, 503,
        "no healthy endpoint and no fallback pool: {body}"
    );
    assert_eq!(up.requests(), 0);
}

#[test]
fn sigterm_exits_gracefully() {
    let up = Upstream::start("u");
    let mut proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n{}",
        listener(free_port()),
        endpoints_yaml(&[&up], 6)
    ));
    assert_eq!(answer(&proxy).0, 200);
    let status = proxy.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", proxy.logs());
    assert!(proxy.logs().contains("SIGTERM received"));
}
