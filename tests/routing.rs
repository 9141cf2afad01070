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

#[test]
fn host_selects_the_load_balancer_and_unknown_hosts_get_404() {
    let app = Upstream::healthy("app-1");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("app.example.com", lb(["app"]))
        .pool("app", pool([&app]))
        .start();
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
    let named = Upstream::healthy("named");
    let any = Upstream::healthy("any");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("shop.example.com", lb(["named"]))
        .load_balancer("off.example.com", lb(["named"]).enabled(false))
        .load_balancer("*", lb(["any"]))
        .pool("named", pool([&named]))
        .pool("any", pool([&any]))
        .start();
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
    let heavy = Upstream::healthy("heavy");
    let light = Upstream::healthy("light");
    let zero = Upstream::healthy("zero");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool(
            "p",
            pool([
                endpoint(&heavy).weight(1.0),
                endpoint(&light).weight(0.5),
                endpoint(&zero).weight(0.0),
            ]),
        )
        .start();
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
    let ups = ["h1", "h2", "h3"].map(Upstream::healthy);
    let proxy = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool(&ups).origin_steering(OriginSteering::Hash))
        .start();
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
fn busy_endpoint_is_avoided(config: &Tether, slow: &Upstream) {
    let proxy = config.start();
    slow.set_delay(Duration::from_secs(2));
    let holder = park_one_request_on_slow(&proxy);
    let seen = spread(&proxy, "x", 20);
    assert_eq!(seen.get("fast"), Some(&20), "{seen:?}");
    assert_eq!(holder.join().unwrap(), (200, "slow".to_string()));
}

fn one_pool(policy: OriginSteering, slow: &Upstream, fast: &Upstream) -> Tether {
    tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([slow, fast]).origin_steering(policy))
}

#[test]
fn least_outstanding_requests_avoids_the_busy_endpoint() {
    let (slow, fast) = (Upstream::healthy("slow"), Upstream::healthy("fast"));
    let config = one_pool(OriginSteering::LeastOutstandingRequests, &slow, &fast);
    busy_endpoint_is_avoided(&config, &slow);
}

#[test]
fn least_connections_avoids_the_busy_endpoint() {
    let (slow, fast) = (Upstream::healthy("slow"), Upstream::healthy("fast"));
    let config = one_pool(OriginSteering::LeastConnections, &slow, &fast);
    busy_endpoint_is_avoided(&config, &slow);
}

/// `"*"` over pools `first` (of `a`) and `second` (of `b`), steered by `balancer`.
fn two_pools(balancer: LoadBalancer, a: &Upstream, b: &Upstream) -> Tether {
    tether()
        .listener(free_port())
        .load_balancer("*", balancer)
        .pool("first", pool([a]))
        .pool("second", pool([b]))
}

#[test]
fn off_steering_keeps_the_listed_order() {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    for steering in [Steering::Off, Steering::Unset] {
        let balancer = lb(["first", "second"]).steering(steering);
        let proxy = two_pools(balancer, &a, &b).start();
        let seen = spread(&proxy, "x", 30);
        assert_eq!(seen.get("a"), Some(&30), "steering {steering:?}: {seen:?}");
    }
}

#[test]
fn random_steering_follows_pool_weights() {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    let balancer = lb(["first", "second"])
        .steering(Steering::Random)
        .random_steering(1.0, &[("first", 0.2), ("second", 0.8)]);
    let proxy = two_pools(balancer, &a, &b).start();
    let seen = spread(&proxy, "x", 300);
    let second = *seen.get("b").unwrap_or(&0) as f64 / 300.0;
    assert!(
        (0.68..0.92).contains(&second),
        "pool weights 0.2 / 0.8 should send about 80% to the second pool: {seen:?}"
    );
}

#[test]
fn least_outstanding_requests_steering_prefers_the_idle_pool() {
    let (slow, fast) = (Upstream::healthy("slow"), Upstream::healthy("fast"));
    let balancer = lb(["first", "second"]).steering(Steering::LeastOutstandingRequests);
    busy_endpoint_is_avoided(&two_pools(balancer, &slow, &fast), &slow);
}

#[test]
fn dynamic_latency_steering_prefers_the_faster_pool() {
    // The monitor probes "/", which the slow upstream delays like any request.
    let slow = Upstream::slow("slow", Duration::from_millis(150));
    let fast = Upstream::healthy("fast");
    let proxy = tether()
        .listener(free_port())
        .load_balancer(
            "*",
            lb(["first", "second"]).steering(Steering::DynamicLatency),
        )
        .pool("first", pool([&slow]).monitor("rtt"))
        .pool("second", pool([&fast]).monitor("rtt"))
        .monitor(
            "rtt",
            Monitor::http("/").interval(0.5).timeout(0.5).retries(0),
        )
        .start();
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
    let plain = Upstream::healthy("plain");
    let rewritten = Upstream::healthy("rewritten");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("plain.example.com", lb(["plain"]))
        .load_balancer("rewrite.example.com", lb(["rewritten"]))
        .pool("plain", pool([&plain]))
        .pool(
            "rewritten",
            pool([endpoint(&rewritten).host("app.internal")]),
        )
        .start();
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
    let up = Upstream::healthy("logged");
    let proxy = tether()
        .listener(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]))
        .start();
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

#[test]
fn json_access_log_has_every_field_and_the_request_id_goes_upstream() {
    let up = Upstream::healthy("jsonlog");
    let proxy = tether()
        .listener(free_port())
        .access_log("json")
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([&up]))
        .start();
    let c = client();
    // No X-Request-Id: Tether makes one and sends it upstream.
    let (status, _, body) = get_h(
        &c,
        &proxy.url("/echo?a=1"),
        &[("host", "shop.test"), ("user-agent", "probe \"7\"")],
    );
    assert_eq!(status, 200);
    let first_len = body.len() as u64;
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sent = echo["headers"]["x-request-id"][0]
        .as_str()
        .expect("an X-Request-Id upstream")
        .to_string();
    assert_eq!(sent.len(), 32, "{sent}");
    // The client's own is kept as it is.
    let (_, _, body) = get_h(
        &c,
        &proxy.url("/echo"),
        &[("host", "shop.test"), ("x-request-id", "client-id-1")],
    );
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-request-id"][0], "client-id-1");

    let find = |id: &str| -> Option<serde_json::Value> {
        proxy.logs().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
            (v["request_id"] == id).then_some(v)
        })
    };
    assert!(
        proxy.wait_for_logs(Duration::from_secs(5), |_| find(&sent).is_some()
            && find("client-id-1").is_some()),
        "no JSON access lines in:\n{}",
        proxy.logs()
    );
    let line = find(&sent).unwrap();
    let fields = line.as_object().unwrap();
    for key in [
        "time",
        "client",
        "host",
        "method",
        "path",
        "status",
        "load_balancer",
        "pool",
        "endpoint",
        "affinity",
        "upstream_time",
        "total_time",
        "error",
        "reason",
        "bytes_sent",
        "upstream",
        "request_id",
        "rule",
        "user_agent",
    ] {
        assert!(fields.contains_key(key), "{key} missing from {line}");
    }
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["host"], "shop.test");
    assert_eq!(line["path"], "/echo?a=1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["endpoint"], "jsonlog");
    assert_eq!(line["upstream"], up.addr().to_string());
    assert_eq!(line["user_agent"], "probe \"7\"");
    assert_eq!(line["bytes_sent"].as_u64(), Some(first_len));
    assert!(line["total_time"].as_f64().unwrap() > 0.0);
    assert!(line["upstream_time"].as_f64().unwrap() > 0.0);
}
