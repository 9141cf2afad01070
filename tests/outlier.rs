//! Passive health (a pool's `outlier_detection`) through the real binary:
//! an endpoint that answers 500 to traffic while its health path says 200 is
//! ejected after the configured count, its sessions are re-pinned, and it is
//! back after the ejection; fewer errors reach clients than with the monitor
//! alone (measured).

mod support;

use std::time::Duration;

use support::*;

const HOST: &str = "www.example.com";

fn config(a: &Upstream, b: &Upstream, outlier: bool) -> Tether {
    let mut web = pool([a, b]).monitor("web");
    if outlier {
        web = web.outlier_detection(OutlierDetection {
            consecutive_5xx: Some(3),
            consecutive_gateway_failure: Some(0),
            base_ejection_time: Some(2),
            max_ejection_percent: Some(50.0),
        });
    }
    tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .load_balancer(HOST, lb(["web"]).affinity(Affinity::Cookie))
        .pool("web", web)
        .monitor("web", Monitor::http("/health").interval(1.0))
}

/// A session pinned to `who` (new sessions until one lands there).
fn session_on(client: &reqwest::blocking::Client, proxy: &TetherProc, who: &str) -> String {
    for _ in 0..200 {
        let (status, body, _, cookie) = visit_as(client, proxy, HOST, None);
        if status == 200 && body == who {
            return cookie.expect("a new session gets a cookie");
        }
    }
    panic!("no new session landed on {who}");
}

#[test]
fn an_endpoint_failing_live_traffic_is_ejected_repinned_and_back_after() {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    let proxy = config(&a, &b, true).start();
    let client = client();
    api::wait_for_health(&proxy, "web", "a", true, Duration::from_secs(10));
    let cookie = session_on(&client, &proxy, "a");

    a.set_traffic_status(Some(500));
    // Exactly consecutive_5xx (3) errors reach the pinned client, then its
    // session is re-pinned to b.
    let mut errors = 0;
    let mut cookie = cookie;
    loop {
        let (status, body, decision, new_cookie) = visit_as(&client, &proxy, HOST, Some(&cookie));
        if status == 500 {
            errors += 1;
            assert!(
                errors <= 3,
                "more than consecutive_5xx errors reached the client"
            );
            continue;
        }
        assert_eq!(
            (status, body.as_str(), decision.as_str()),
            (200, "b", "repin_unhealthy")
        );
        cookie = new_cookie.expect("the re-pin writes a cookie");
        break;
    }
    assert_eq!(errors, 3);
    // The monitor still calls it healthy; the ejection shows beside it.
    let view = api::endpoint_view(&proxy, "web", "a");
    assert_eq!(view["healthy"], true, "{view}");
    assert_eq!(view["ejections"], 1, "{view}");
    assert!(
        view["ejected_seconds_left"].as_u64().unwrap_or(0) >= 1,
        "{view}"
    );
    let (_, _, metrics) = get(&client, &proxy.admin_url("/metrics"), &proxy.admin_host());
    assert!(
        metrics.contains("tether_endpoint_ejected{endpoint=\"a\",pool=\"web\"} 1")
            || metrics.contains("tether_endpoint_ejected{pool=\"web\",endpoint=\"a\"} 1"),
        "{metrics}"
    );
    // While ejected, no new session reaches a.
    for _ in 0..20 {
        let (status, body, _, _) = visit_as(&client, &proxy, HOST, None);
        assert_eq!((status, body.as_str()), (200, "b"));
    }
    // The re-pinned session stays on b.
    let (_, body, decision, _) = visit_as(&client, &proxy, HOST, Some(&cookie));
    assert_eq!((body.as_str(), decision.as_str()), ("b", "hit"));

    // Fixed, and back after the ejection (2 s): new sessions reach a again.
    a.set_traffic_status(None);
    assert!(
        wait_until(Duration::from_secs(10), || {
            api::endpoint_view(&proxy, "web", "a")["ejected_seconds_left"] == 0
        }),
        "the ejection ends"
    );
    session_on(&client, &proxy, "a");
}

/// Errors that reach 40 sessions (5 requests each) while endpoint `a`
/// answers 500 to traffic and 200 to its monitor.
fn errors_reaching_clients(outlier: bool) -> usize {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    let proxy = config(&a, &b, outlier).start();
    let client = client();
    api::wait_for_health(&proxy, "web", "a", true, Duration::from_secs(10));
    a.set_traffic_status(Some(500));
    let mut errors = 0;
    for _ in 0..40 {
        let mut cookie: Option<String> = None;
        for _ in 0..5 {
            // A browser keeps the cookie of an error answer too.
            let cookie_header = cookie.as_ref().map(|c| format!("__cflb={c}"));
            let mut headers = vec![("host", HOST)];
            if let Some(c) = cookie_header.as_deref() {
                headers.push(("cookie", c));
            }
            let (status, h, _) = get_h(&client, &proxy.url("/"), &headers);
            if status == 500 {
                errors += 1;
            }
            cookie = set_cookie_value(&h, "__cflb").or(cookie);
        }
    }
    errors
}

#[test]
fn passive_health_lets_fewer_errors_reach_clients_than_the_monitor_alone() {
    let monitor_only = errors_reaching_clients(false);
    let with_outlier = errors_reaching_clients(true);
    println!(
        "200 requests (40 cookie sessions x 5), endpoint a answers 500 to traffic, 200 to /health: \
         {monitor_only} errors reached clients with the monitor alone, {with_outlier} with outlier_detection"
    );
    assert!(
        monitor_only >= 50,
        "a takes about half the sessions: {monitor_only}"
    );
    // 3 per ejection; a repeat (after 2 s, then 4 s) may add 3 more each.
    assert!(with_outlier <= 9, "{with_outlier}");
    assert!(
        with_outlier * 5 < monitor_only,
        "{with_outlier} vs {monitor_only}"
    );
}
