//! `GET /metrics` (SPEC 5) through the real binary: a known mix of requests,
//! then every counter must equal what was sent, exactly; gauges (health,
//! enabled, weight, in-flight, drain time left, session-table size) follow the
//! state.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use support::*;

/// One scrape: series (`name{labels}` as written by the exposition, labels
/// sorted by name) → value.
#[derive(Debug, Default)]
struct Scrape {
    series: BTreeMap<String, f64>,
    text: String,
}

/// `name{k1="v1",k2="v2"}` with the labels sorted by name (no escapes: the
/// names used here have none).
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn parse(text: &str) -> Scrape {
    let mut series = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (head, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().expect(line);
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect(line);
                let labels: Vec<(&str, &str)> = rest
                    .split("\",")
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect(line);
                        (k, v.trim_end_matches('"'))
                    })
                    .collect();
                (name, labels)
            }
        };
        let k = key(name, &labels);
        assert!(
            series.insert(k, value).is_none(),
            "series written twice: {line}"
        );
    }
    Scrape {
        series,
        text: text.to_string(),
    }
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&key(name, labels)).copied()
    }

    /// Every series of `name` (keys as [`key`] writes them).
    fn family(&self, name: &str) -> BTreeMap<String, f64> {
        self.series
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    fn sum(&self, name: &str) -> f64 {
        self.family(name).values().sum()
    }
}

fn scrape(proxy: &TetherProc) -> Scrape {
    let (status, headers, body) = get(&client(), &proxy.admin_url("/metrics"), &proxy.admin_host());
    assert_eq!(status, 200, "GET /metrics: {body}");
    let ctype = header(&headers, "content-type").unwrap_or_default();
    assert!(ctype.starts_with("text/plain"), "content-type {ctype:?}");
    parse(&body)
}

/// Scrapes until `done` holds (the proxy counts a request in its `logging`,
/// which may run just after the client has its response), at most 10 s.
fn scrape_until(proxy: &TetherProc, what: &str, mut done: impl FnMut(&Scrape) -> bool) -> Scrape {
    let mut last = Scrape::default();
    let ok = wait_until(Duration::from_secs(10), || {
        last = scrape(proxy);
        done(&last)
    });
    assert!(
        ok,
        "{what}: not reached in 10 s; last scrape:\n{}",
        last.text
    );
    last
}

/// `X-Tether-Decision: <lb>/<pool>/<endpoint>/<decision>` as its four parts.
fn decision(headers: &reqwest::header::HeaderMap) -> [String; 4] {
    let value = header(headers, "x-tether-decision").expect("X-Tether-Decision");
    let parts: Vec<String> = value.split('/').map(str::to_string).collect();
    parts.try_into().expect("four parts")
}

const DECISIONS: [&str; 10] = [
    "none",
    "new",
    "hit",
    "expired",
    "invalid",
    "repin_unhealthy",
    "repin_drained",
    "failover_temporary",
    "failover_sticky",
    "repin_shed",
];

#[test]
fn counters_equal_the_requests_sent_and_gauges_follow_the_state() {
    let (a, b, z) = (
        Upstream::healthy("a"),
        Upstream::healthy("b"),
        Upstream::healthy("z"),
    );
    let c = Upstream::healthy("c");
    let e = Upstream::healthy("e");
    e.set_healthy(false);
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .load_balancer("x", lb(["p"]).affinity(Affinity::Cookie).drain(600))
        .load_balancer("ip.test", lb(["p"]).affinity(Affinity::SourceIp))
        .load_balancer("down.test", lb(["d"]))
        .load_balancer("mon.test", lb(["m"]))
        .pool("p", pool([&a, &b]).and(endpoint(&z).enabled(false)))
        .pool("d", pool([&c]))
        .pool("m", pool([&e]).monitor("fast"))
        .monitor("fast", Monitor::every(1.0))
        .start();
    c.stop();

    // What was sent, tallied from the responses themselves.
    let mut requests: HashMap<[String; 4], u64> = HashMap::new();
    let mut decisions: HashMap<[String; 2], u64> = HashMap::new();
    let mut count = |lb: &str, pool: &str, endpoint: &str, status: u16, d: &str| {
        *requests
            .entry([lb.into(), pool.into(), endpoint.into(), status.to_string()])
            .or_default() += 1;
        *decisions.entry([lb.into(), d.into()]).or_default() += 1;
    };
    let http = client();

    // 7 requests to x without a cookie: 7 × new.
    let mut cookie = None;
    for _ in 0..7 {
        let (status, h, _) = get(&http, &proxy.url("/"), "x");
        assert_eq!(status, 200);
        let [lb, pool, endpoint, d] = decision(&h);
        assert_eq!((lb.as_str(), pool.as_str(), d.as_str()), ("x", "p", "new"));
        count(&lb, &pool, &endpoint, status, &d);
        cookie = set_cookie_value(&h, "__cflb");
    }
    // 5 with a valid cookie: 5 × hit.
    let cookie = format!("__cflb={}", cookie.expect("a new session gets a cookie"));
    let mut pinned = String::new();
    for _ in 0..5 {
        let (status, h, _) = get_h(
            &http,
            &proxy.url("/"),
            &[("host", "x"), ("cookie", &cookie)],
        );
        assert_eq!(status, 200);
        let [lb, pool, endpoint, d] = decision(&h);
        assert_eq!(d, "hit");
        count(&lb, &pool, &endpoint, status, &d);
        pinned = endpoint;
    }
    // 3 to a host no load balancer serves (there is no "*"): 404.
    for _ in 0..3 {
        let (status, _, _) = get(&http, &proxy.url("/"), "unknown.test");
        assert_eq!(status, 404);
        count("-", "-", "-", status, "none");
    }
    // 2 while the only endpoint of down.test is stopped: 502.
    for _ in 0..2 {
        let (status, _, body) = get(&http, &proxy.url("/"), "down.test");
        assert_eq!(status, 502, "{body}");
        count("down.test", "d", "c", status, "none");
    }
    // source_ip from 4 client addresses, 2 requests each: 4 × new, 4 × hit,
    // 4 sessions in the table.
    let clients: Vec<IpAddr> = (2..=5)
        .map(|i| format!("127.0.0.{i}").parse().unwrap())
        .collect();
    for ip in &clients {
        let from = client_from(*ip);
        for expected in ["new", "hit"] {
            let (status, h, _) = get(&from, &proxy.url("/"), "ip.test");
            assert_eq!(status, 200);
            let [lb, pool, endpoint, d] = decision(&h);
            assert_eq!(d, expected, "client {ip}");
            count(&lb, &pool, &endpoint, status, &d);
        }
    }
    let sent: u64 = requests.values().sum();
    assert_eq!(sent, 7 + 5 + 3 + 2 + 8);

    let m = scrape_until(&proxy, "every request counted", |m| {
        m.sum("tether_requests_total") >= sent as f64
    });

    // Counters: exactly what was sent, series by series, and nothing else.
    let expected: BTreeMap<String, f64> = requests
        .iter()
        .map(|([lb, pool, endpoint, status], n)| {
            let labels = [
                ("load_balancer", lb.as_str()),
                ("pool", pool.as_str()),
                ("endpoint", endpoint.as_str()),
                ("status", status.as_str()),
            ];
            (key("tether_requests_total", &labels), *n as f64)
        })
        .collect();
    assert_eq!(m.family("tether_requests_total"), expected, "{}", m.text);

    let mut expected = BTreeMap::new();
    // Every configured load balancer has every decision; `-` only what it saw.
    expected.insert(
        key(
            "tether_affinity_decisions_total",
            &[("load_balancer", "-"), ("decision", "none")],
        ),
        3.0,
    );
    for lb in ["x", "ip.test", "down.test", "mon.test"] {
        for d in DECISIONS {
            let n = decisions.get(&[lb.to_string(), d.to_string()]).copied();
            let labels = [("load_balancer", lb), ("decision", d)];
            expected.insert(
                key("tether_affinity_decisions_total", &labels),
                n.unwrap_or(0) as f64,
            );
        }
    }
    assert_eq!(
        m.family("tether_affinity_decisions_total"),
        expected,
        "{}",
        m.text
    );
    let dec = |lb: &str, d: &str| {
        m.get(
            "tether_affinity_decisions_total",
            &[("load_balancer", lb), ("decision", d)],
        )
    };
    assert_eq!(dec("x", "new"), Some(7.0));
    assert_eq!(dec("x", "hit"), Some(5.0));
    assert_eq!(dec("ip.test", "new"), Some(4.0));
    assert_eq!(dec("ip.test", "hit"), Some(4.0));
    assert_eq!(dec("-", "none"), Some(3.0));
    assert_eq!(dec("down.test", "none"), Some(2.0));
    assert_eq!(m.sum("tether_affinity_decisions_total"), sent as f64);

    // The session table holds the 4 source_ip sessions (cookies live in cookies).
    assert_eq!(m.get("tether_sessions", &[]), Some(4.0), "{}", m.text);

    // Gauges.
    let ep = |name: &str, pool: &str, endpoint: &str| {
        m.get(name, &[("pool", pool), ("endpoint", endpoint)])
    };
    for (pool, endpoint, enabled) in [
        ("p", "a", 1.0),
        ("p", "b", 1.0),
        ("p", "z", 0.0),
        ("d", "c", 1.0),
        ("m", "e", 1.0),
    ] {
        assert_eq!(
            ep("tether_endpoint_enabled", pool, endpoint),
            Some(enabled),
            "{pool}/{endpoint}"
        );
        assert_eq!(ep("tether_endpoint_weight", pool, endpoint), Some(1.0));
    }
    // Without a monitor an endpoint counts as healthy, even c, which is stopped.
    for (pool, endpoint) in [("p", "a"), ("p", "b"), ("d", "c")] {
        assert_eq!(
            ep("tether_endpoint_healthy", pool, endpoint),
            Some(1.0),
            "{pool}/{endpoint}"
        );
    }
    // z was disabled in the file: draining for x (affinity, 600 s), not for
    // ip.test (drain_duration 0) nor for the load balancers without affinity.
    let drains = m.family("tether_endpoint_drain_seconds_left");
    assert_eq!(drains.len(), 1, "{drains:?}");
    let left = m
        .get(
            "tether_endpoint_drain_seconds_left",
            &[("load_balancer", "x"), ("pool", "p"), ("endpoint", "z")],
        )
        .expect("z drains for x");
    assert!(left > 500.0 && left <= 600.0, "{left}");

    // e's monitor fails: unhealthy endpoint, unhealthy pool.
    let m = scrape_until(&proxy, "e reported unhealthy", |m| {
        m.get(
            "tether_endpoint_healthy",
            &[("pool", "m"), ("endpoint", "e")],
        ) == Some(0.0)
    });
    assert_eq!(m.get("tether_pool_healthy", &[("pool", "m")]), Some(0.0));
    assert_eq!(m.get("tether_pool_healthy", &[("pool", "p")]), Some(1.0));

    // In flight: nothing now; one slow request shows on its endpoint and pool.
    let m = scrape_until(&proxy, "nothing in flight", |m| {
        m.sum("tether_endpoint_in_flight") == 0.0 && m.sum("tether_pool_in_flight") == 0.0
    });
    assert_eq!(m.family("tether_pool_in_flight").len(), 3, "{}", m.text);
    let pinned_up = if pinned == "a" { &a } else { &b };
    let hits_before = pinned_up.requests();
    pinned_up.set_delay(Duration::from_millis(1500));
    let url = proxy.url("/");
    let slow_cookie = cookie.clone();
    let slow =
        thread::spawn(move || get_h(&client(), &url, &[("host", "x"), ("cookie", &slow_cookie)]).0);
    let m = scrape_until(&proxy, "one request in flight", |m| {
        m.get(
            "tether_endpoint_in_flight",
            &[("pool", "p"), ("endpoint", &pinned)],
        ) == Some(1.0)
    });
    assert_eq!(m.get("tether_pool_in_flight", &[("pool", "p")]), Some(1.0));
    assert_eq!(m.sum("tether_endpoint_in_flight"), 1.0, "{}", m.text);
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(pinned_up.requests(), hits_before + 1);
    let m = scrape_until(&proxy, "the slow request counted", |m| {
        m.sum("tether_requests_total") == (sent + 1) as f64
    });
    assert_eq!(m.sum("tether_pool_in_flight"), 0.0, "{}", m.text);
    assert_eq!(
        dec("x", "hit"),
        Some(5.0),
        "the earlier scrape is unchanged"
    );
    assert_eq!(
        m.get(
            "tether_affinity_decisions_total",
            &[("load_balancer", "x"), ("decision", "hit")]
        ),
        Some(6.0)
    );
}

#[test]
fn latency_histograms_count_every_request_and_probe() {
    let (a, slow) = (Upstream::healthy("a"), Upstream::healthy("slow"));
    slow.set_delay(Duration::from_millis(30));
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("fast.test", lb(["p"]))
        .load_balancer("slow.test", lb(["s"]))
        .pool("p", pool([&a]).monitor("m"))
        .pool("s", pool([&slow]))
        .monitor("m", Monitor::every(1.0))
        .start();
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, &proxy.url("/"), "fast.test").0, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&c, &proxy.url("/"), "slow.test").0, 200);
    }
    let fast = [
        ("endpoint", "a"),
        ("load_balancer", "fast.test"),
        ("pool", "p"),
    ];
    let slow_l = [
        ("endpoint", "slow"),
        ("load_balancer", "slow.test"),
        ("pool", "s"),
    ];
    let total = "tether_request_duration_seconds";
    let up = "tether_upstream_response_duration_seconds";
    let s = scrape_until(&proxy, "8 requests and a probe in the histograms", |s| {
        s.get(&format!("{total}_count"), &fast) == Some(5.0)
            && s.get(&format!("{total}_count"), &slow_l) == Some(3.0)
            && s.get(
                "tether_monitor_probe_duration_seconds_count",
                &[("endpoint", "a"), ("pool", "p")],
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert!(
        s.text.contains(&format!("# TYPE {total} histogram")),
        "{}",
        s.text
    );
    let bucket = |name: &str, labels: &[(&str, &str)], le: &str| {
        let mut l = labels.to_vec();
        l.push(("le", le));
        s.get(&format!("{name}_bucket"), &l)
    };
    // Cumulative, +Inf equal to the count.
    assert_eq!(bucket(total, &slow_l, "+Inf"), Some(3.0));
    assert_eq!(bucket(up, &slow_l, "+Inf"), Some(3.0));
    // The slow endpoint's 30 ms show: none under 25 ms, all under 50 ms... 1 s.
    assert_eq!(bucket(up, &slow_l, "0.025"), Some(0.0), "{}", s.text);
    assert_eq!(bucket(up, &slow_l, "1"), Some(3.0), "{}", s.text);
    let sum = s.get(&format!("{up}_sum"), &slow_l).unwrap();
    assert!((0.09..1.0).contains(&sum), "sum {sum}");
    assert_eq!(bucket(total, &fast, "+Inf"), Some(5.0));
}
