//! Health and failure (SPEC 3.2, 3.5, 4.4 first paragraph): monitors move
//! traffic between pools, the fallback pool serves when all are down, a
//! refused connection is retried once elsewhere, and the error statuses.

mod support;

use std::time::Duration;

use support::api::wait_for_health;
use support::*;

/// How long a monitor probing every 0.2 s may take to change its verdict here.
const VERDICT: Duration = Duration::from_secs(5);

/// A listener, an admin listener (to read the monitors' verdicts) and the monitor
/// `fast`: `GET /health` every 0.2 s, one failure marks an endpoint down.
fn monitored() -> Tether {
    tether()
        .listener(free_port())
        .admin(free_port())
        .monitor("fast", Monitor::every(0.2))
}

/// A listener, nothing else yet.
fn plain() -> Tether {
    tether().listener(free_port())
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
    let primary = Upstream::healthy("primary-1");
    let secondary = Upstream::healthy("secondary-1");
    let proxy = monitored()
        .load_balancer("*", lb(["primary", "secondary"]))
        .pool("primary", pool([&primary]).monitor("fast"))
        .pool("secondary", pool([&secondary]).monitor("fast"))
        .start();
    assert_eq!(answer(&proxy), (200, "primary-1".to_string()));

    primary.set_healthy(false);
    let verdict = wait_for_health(&proxy, "primary", "primary-1", false, VERDICT);
    for _ in 0..20 {
        assert_eq!(answer(&proxy), (200, "secondary-1".to_string()));
    }
    let reason = verdict["last_check"]["failure"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("status 503 is not expected"), "{verdict}");
    assert!(
        proxy.wait_for_log("status 503 is not expected", VERDICT),
        "the reason is logged:\n{}",
        proxy.logs()
    );

    primary.set_healthy(true);
    wait_for_health(&proxy, "primary", "primary-1", true, VERDICT);
    assert!(
        settles_on(&proxy, "primary-1", 10),
        "traffic did not return to primary"
    );
}

#[test]
fn minimum_origins_is_the_pool_health_threshold() {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    let other = Upstream::healthy("other");
    let proxy = monitored()
        .load_balancer("*", lb(["pair", "other"]))
        .pool("pair", pool([&a, &b]).minimum_origins(2).monitor("fast"))
        .pool("other", pool([&other]))
        .start();
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
    let primary = Upstream::healthy("primary-1");
    let fallback = Upstream::healthy("fallback-1");
    fallback.set_healthy(false);
    let proxy = monitored()
        .load_balancer("*", lb(["primary"]).fallback("fallback"))
        .pool("primary", pool([&primary]).monitor("fast"))
        .pool("fallback", pool([&fallback]).monitor("fast"))
        .start();
    wait_for_health(&proxy, "fallback", "fallback-1", false, VERDICT);
    assert_eq!(answer(&proxy), (200, "primary-1".to_string()));
    primary.set_healthy(false);
    assert!(
        settles_on(&proxy, "fallback-1", 10),
        "the unhealthy fallback pool should still serve"
    );
}

#[test]
fn no_usable_endpoint_answers_503() {
    let a = Upstream::healthy("a");
    let proxy = plain()
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([endpoint(&a).enabled(false)]))
        .start();
    let (status, body) = answer(&proxy);
    assert_eq!(status, 503);
    assert!(body.contains("no usable endpoint"), "{body}");
    assert_eq!(a.requests(), 0);
}

#[test]
fn refused_connection_is_retried_on_another_endpoint() {
    let dead = Upstream::refusing("dead");
    let live = Upstream::healthy("live");
    let proxy = plain()
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&dead, &live]))
        .start();
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
    let dead = Upstream::refusing("dead");
    let live = Upstream::healthy("live");
    let config = |across: bool| {
        plain()
            .load_balancer("*", lb(["first", "second"]).failover_across_pools(across))
            .pool("first", pool([&dead]))
            .pool("second", pool([&live]))
    };
    let proxy = config(false).start();
    let (status, body) = answer(&proxy);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream unreachable"), "{body}");
    drop(proxy);

    let proxy = config(true).start();
    for _ in 0..10 {
        assert_eq!(answer(&proxy), (200, "live".to_string()));
    }
}

#[test]
fn every_endpoint_refusing_gives_502() {
    let a = Upstream::refusing("a");
    let b = Upstream::refusing("b");
    let proxy = plain()
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&a, &b]))
        .start();
    let (status, body) = answer(&proxy);
    assert_eq!(status, 502);
    assert!(body.contains("502") && !body.contains("panicked"), "{body}");
}

#[test]
fn upstream_timeout_gives_504_and_the_proxy_keeps_serving() {
    let stuck = Upstream::slow("stuck", Duration::from_secs(5));
    let proxy = plain()
        .upstream_read_timeout(0.3)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&stuck]))
        .start();
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
    let gone = Upstream::healthy("gone");
    let live = Upstream::healthy("live");
    let proxy = plain()
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&gone, &live]).monitor("tcp"))
        .monitor("tcp", Monitor::tcp().interval(0.2).timeout(0.2).retries(1))
        .start();
    gone.stop();
    let verdict = wait_for_health(&proxy, "p", "gone", false, VERDICT);
    let reason = verdict["last_check"]["failure"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("tcp connect"), "{verdict}");
    assert!(
        proxy.wait_for_log("tcp connect", VERDICT),
        "the reason is logged:\n{}",
        proxy.logs()
    );
    assert_eq!(
        live.health_checks(),
        0,
        "a tcp monitor sends no HTTP request"
    );
}

#[test]
fn http_monitor_checks_codes_body_method_and_headers() {
    let up = Upstream::healthy("checked");
    let strict = Monitor::every(0.2)
        .expected_codes("2xx")
        .expected_body("NOT-THERE")
        .consecutive_down(2);
    let proxy = plain()
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]).monitor("strict"))
        .monitor("strict", strict)
        .start();
    let verdict = wait_for_health(&proxy, "p", "checked", false, VERDICT);
    let reason = verdict["last_check"]["failure"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("body does not contain"), "{verdict}");
    assert!(
        proxy.wait_for_log("failed 2 time(s) in a row", VERDICT),
        "{}",
        proxy.logs()
    );
    let (status, body) = answer(&proxy);
    assert_eq!(
        status, 503,
        "no healthy endpoint and no fallback pool: {body}"
    );
    assert_eq!(up.requests(), 0);
}

#[test]
fn sigterm_exits_gracefully() {
    let up = Upstream::healthy("u");
    let mut proxy = plain()
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]))
        .start();
    assert_eq!(answer(&proxy).0, 200);
    let status = proxy.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", proxy.logs());
    assert!(proxy.logs().contains("SIGTERM received"));
}
