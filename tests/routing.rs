//! Routing (SPEC 3): host → load balancer, pool steering, origin steering,
//! weights and forwarding headers, through the real binary and real upstreams.

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::*;

/// Sends `n` GETs with `host` and counts the answering upstream (`x-upstream`).
fn spread(proxy: &TetherProc, host: &str, n: usize) -> HashMap<String, usize> {
    let client = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let (status, headers, body) = get(&client, &proxy.url("/"), host);
        assert_eq!(status, 200, "body: {body}");
        let who = headers
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string();
        *seen.entry(who).or_default() += 1;
    }
    seen
}

fn listener(port: u16) -> String {
    format!("listeners:\n  - address: \"127.0.0.1:{port}\"\n")
}

#[test]
fn host_selects_the_load_balancer_and_unknown_hosts_get_404() {
    let app = Upstream::start("app-1");
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  app.example.com:\n    default_pools: [app]\npools:\n  app:\n    endpoints:\n{}",
        listener(port),
        endpoints_yaml(&[&app], 6)
    ));
    let client = client();

    let (status, headers, body) = get(&client, &proxy.url("/"), "app.example.com");
    assert_eq!((status, body.as_str()), (200, "app-1"));
    assert_eq!(headers["x-upstream"], "app-1");

    let (status, _, body) = get(&client, &proxy.url("/"), "APP.Example.COM:8080");
    assert_eq!(
        (status, body.as_str()),
        (200, "app-1"),
        "case and port are ignored"
    );

    let (status, headers, body) = get(&client, &proxy.url("/"), "other.example.com");
    assert_eq!(status, 404);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(body.contains("no load balancer"), "body: {body}");
    assert_eq!(app.requests(), 2);
}

#[test]
fn catch_all_serves_hosts_no_other_entry_names_and_disabled_answers_503() {
    let named = Upstream::start("named");
    let any = Upstream::start("any");
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  shop.example.com:\n    default_pools: [named]\n  off.example.com:\n    enabled: false\n    default_pools: [named]\n  \"*\":\n    default_pools: [any]\npools:\n  named:\n    endpoints:\n{}  any:\n    endpoints:\n{}",
        listener(port),
        endpoints_yaml(&[&named], 6),
        endpoints_yaml(&[&any], 6)
    ));
    let client = client();
    assert_eq!(get(&client, &proxy.url("/"), "shop.example.com").2, "named");
    assert_eq!(get(&client, &proxy.url("/"), "whatever.test").2, "any");
    let (status, _, body) = get(&client, &proxy.url("/"), "off.example.com");
    assert_eq!(status, 503);
    assert!(body.contains("disabled"), "body: {body}");
    assert_eq!(
        named.requests(),
        1,
        "a disabled load balancer sends nothing upstream"
    );
}

#[test]
fn weights_share_traffic_and_weight_zero_gets_none() {
    let heavy = Upstream::start("heavy");
    let light = Upstream::start("light");
    let zero = Upstream::start("zero");
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n      - {{name: heavy, address: \"{}\", weight: 1.0}}\n      - {{name: light, address: \"{}\", weight: 0.5}}\n      - {{name: zero, address: \"{}\", weight: 0}}\n",
        listener(port),
        heavy.addr(),
        light.addr(),
        zero.addr()
    ));
    let seen = spread(&proxy, "x", 300);
    assert_eq!(
        seen.get("zero"),
        None,
        "weight 0 takes no new traffic: {seen:?}"
    );
    let heavy_share = seen["heavy"] as f64 / 300.0;
    assert!(
        (0.55..0.78).contains(&heavy_share),
        "weights 1.0 and 0.5 should split about 2:1, got {seen:?}"
    );
}

#[test]
fn hash_origin_steering_pins_each_client_ip() {
    let ups: Vec<Upstream> = (1..=3).map(|i| Upstream::start(&format!("h{i}"))).collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    origin_steering: {{policy: hash}}\n    endpoints:\n{}",
        listener(port),
        endpoints_yaml(&refs, 6)
    ));
    let mut chosen = HashMap::new();
    for last in 1..=24u8 {
        let ip: IpAddr = format!("127.0.0.{last}").parse().unwrap();
        let client = client_from(ip);
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (status, headers, _) = get(&client, &proxy.url("/"), "x");
            assert_eq!(status, 200);
            answers.push(headers["x-upstream"].to_str().unwrap().to_string());
        }
        assert!(
            answers.iter().all(|a| a == &answers[0]),
            "client {ip} moved between endpoints: {answers:?}"
        );
        chosen.insert(ip, answers[0].clone());
    }
    let distinct: std::collections::HashSet<_> = chosen.values().collect();
    assert!(
        distinct.len() >= 2,
        "24 clients all hashed to one endpoint: {chosen:?}"
    );
}

/// Parks one request on the endpoint named `slow` (which delays its answers):
/// sends single requests until one does not come back within 300 ms. Returns
/// the thread holding it. Bounded: 20 tries.
fn park_one_request_on_slow(proxy: &TetherProc) -> thread::JoinHandle<(u16, String)> {
    for _ in 0..20 {
        let url = proxy.url("/");
        let (tx, rx) = mpsc::channel();
        let holder = thread::spawn(move || {
            let (status, _, body) = get(&client(), &url, "x");
            let _ = tx.send(());
            (status, body)
        });
        if rx.recv_timeout(Duration::from_millis(300)).is_err() {
            return holder;
        }
        let (status, body) = holder.join().unwrap();
        assert_eq!((status, body.as_str()), (200, "fast"));
    }
    panic!("no request reached the slow endpoint in 20 tries");
}

/// While `slow` holds a request and `fast` holds none, every new request must
/// go to `fast`; random steering would send half of them to `slow`.
fn busy_endpoint_is_avoided(section: &str, slow: &Upstream) {
    let proxy = TetherProc::start(section);
    slow.set_delay(Duration::from_secs(2));
    let holder = park_one_request_on_slow(&proxy);
    let seen = spread(&proxy, "x", 20);
    assert_eq!(seen.get("fast"), Some(&20), "{seen:?}");
    assert_eq!(holder.join().unwrap(), (200, "slow".to_string()));
}

fn one_pool(policy: &str, slow: &Upstream, fast: &Upstream) -> String {
    format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    origin_steering: {{policy: {policy}}}\n    endpoints:\n{}",
        listener(free_port()),
        endpoints_yaml(&[slow, fast], 6)
    )
}

#[test]
fn least_outstanding_requests_avoids_the_busy_endpoint() {
    let (slow, fast) = (Upstream::start("slow"), Upstream::start("fast"));
    busy_endpoint_is_avoided(&one_pool("least_outstanding_requests", &slow, &fast), &slow);
}

#[test]
fn least_connections_avoids_the_busy_endpoint() {
    let (slow, fast) = (Upstream::start("slow"), Upstream::start("fast"));
    busy_endpoint_is_avoided(&one_pool("least_connections", &slow, &fast), &slow);
}

fn two_pool_lb(port: u16, steering: &str, a: &Upstream, b: &Upstream, extra: &str) -> String {
    format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [first, second]\n    steering_policy: {steering}\n{extra}pools:\n  first:\n    endpoints:\n{}  second:\n    endpoints:\n{}",
        listener(port),
        endpoints_yaml(&[a], 6),
        endpoints_yaml(&[b], 6)
    )
}

#[test]
fn off_steering_keeps_the_listed_order() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    for steering in ["off", "\"\""] {
        let proxy = TetherProc::start(&two_pool_lb(free_port(), steering, &a, &b, ""));
        let seen = spread(&proxy, "x", 30);
        assert_eq!(seen.get("a"), Some(&30), "steering {steering}: {seen:?}");
    }
}

#[test]
fn random_steering_follows_pool_weights() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let extra =
        "    random_steering: {default_weight: 1.0, pool_weights: {first: 0.2, second: 0.8}}\n";
    let proxy = TetherProc::start(&two_pool_lb(free_port(), "random", &a, &b, extra));
    let seen = spread(&proxy, "x", 300);
    let second = *seen.get("b").unwrap_or(&0) as f64 / 300.0;
    assert!(
        (0.68..0.92).contains(&second),
        "pool weights 0.2 / 0.8 should send about 80% to the second pool: {seen:?}"
    );
}

#[test]
fn least_outstanding_requests_steering_prefers_the_idle_pool() {
    let (slow, fast) = (Upstream::start("slow"), Upstream::start("fast"));
    let section = two_pool_lb(free_port(), "least_outstanding_requests", &slow, &fast, "");
    busy_endpoint_is_avoided(&section, &slow);
}

#[test]
fn dynamic_latency_steering_prefers_the_faster_pool() {
    let slow = Upstream::start("slow");
    let fast = Upstream::start("fast");
    // The monitor probes "/", which the upstream delays like any request.
    slow.set_delay(Duration::from_millis(150));
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [first, second]\n    steering_policy: dynamic_latency\npools:\n  first:\n    monitor: rtt\n    endpoints:\n{}  second:\n    monitor: rtt\n    endpoints:\n{}monitors:\n  rtt: {{path: /, interval: 0.5, timeout: 0.5, retries: 0}}\n",
        listener(port),
        endpoints_yaml(&[&slow], 6),
        endpoints_yaml(&[&fast], 6)
    ));
    // Both pools have been probed once the slow one has seen two probes.
    assert!(
        wait_until(Duration::from_secs(5), || slow.requests() >= 2
            && fast.requests() >= 2),
        "monitors did not probe both pools"
    );
    let before = slow.requests();
    let seen = spread(&proxy, "x", 20);
    assert_eq!(seen.get("fast"), Some(&20), "{seen:?}");
    // Only monitor probes reached the slow pool meanwhile, never a client request.
    assert!(slow.requests() - before <= 20 / 2);
}

#[test]
fn forwarding_headers_and_host_override() {
    let plain = Upstream::start("plain");
    let rewritten = Upstream::start("rewritten");
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  plain.example.com:\n    default_pools: [plain]\n  rewrite.example.com:\n    default_pools: [rewritten]\npools:\n  plain:\n    endpoints:\n{}  rewritten:\n    endpoints:\n      - {{name: rewritten, address: \"{}\", header: {{Host: [\"app.internal\"]}}}}\n",
        listener(port),
        endpoints_yaml(&[&plain], 6),
        rewritten.addr()
    ));
    let client = client();
    let echo = |host: &str, extra: &[(&str, &str)]| -> serde_json::Value {
        let mut headers = vec![("host", host)];
        headers.extend_from_slice(extra);
        let (status, _, body) = get_h(&client, &proxy.url("/echo?q=1"), &headers);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };

    let seen = echo("Plain.Example.com", &[]);
    assert_eq!(seen["path"], "/echo?q=1");
    assert_eq!(seen["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "http");
    assert_eq!(seen["headers"]["x-forwarded-host"][0], "plain.example.com");
    assert_eq!(seen["headers"]["host"][0], "Plain.Example.com");

    let seen = echo("rewrite.example.com", &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(seen["upstream"], "rewritten");
    assert_eq!(seen["headers"]["host"][0], "app.internal");
    assert_eq!(
        seen["headers"]["x-forwarded-for"][0],
        "203.0.113.9, 127.0.0.1"
    );
    assert_eq!(
        seen["headers"]["x-forwarded-host"][0],
        "rewrite.example.com"
    );
}

#[test]
fn access_log_names_the_decision() {
    let up = Upstream::start("logged");
    let port = free_port();
    let proxy = TetherProc::start(&format!(
        "{}load_balancers:\n  \"*\":\n    default_pools: [p]\npools:\n  p:\n    endpoints:\n{}",
        listener(port),
        endpoints_yaml(&[&up], 6)
    ));
    let (status, _, _) = get(&client(), &proxy.url("/cart?x=1"), "shop.test");
    assert_eq!(status, 200);
    assert!(
        proxy.wait_for_logs(Duration::from_secs(5), |logs| logs.lines().any(|l| {
            l.contains("access]")
                && l.contains("client=127.0.0.1")
                && l.contains("host=shop.test")
                && l.contains("method=GET")
                && l.contains("path=/cart?x=1")
                && l.contains("status=200")
                && l.contains("lb=* pool=p endpoint=logged")
                && l.contains("affinity=none")
                && l.contains("upstream_time=0.")
                && l.contains("total_time=0.")
        })),
        "no matching access line in:\n{}",
        proxy.logs()
    );
}
