//! Host-name endpoints (`tether.dns_refresh`) through the real binary. A name
//! whose answer changes cannot be arranged offline without touching
//! /etc/hosts, so here `localhost` names are re-resolved every 0.2 s while a
//! cookie session keeps being served by its endpoint, and nothing moves; the
//! move itself (a changed answer, a failed one, the interval) is unit-tested
//! in `src/services/dns.rs` with a fake `ServiceDiscovery` under tokio's paused clock.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn host_name_endpoints_keep_serving_and_keep_their_sessions_while_re_resolved() {
    let (a, b) = (Upstream::healthy("name-a"), Upstream::healthy("name-b"));
    let proxy = tether()
        .listener(free_port())
        .dns_refresh(0.2)
        .load_balancer("*", lb(["p"]).affinity(Affinity::Cookie))
        .pool(
            "p",
            pool([
                Endpoint::at("name-a", &format!("localhost:{}", a.port())),
                Endpoint::at("name-b", &format!("localhost:{}", b.port())),
            ]),
        )
        .builder()
        .env("RUST_LOG", "info,tether::services::dns=debug")
        .start();
    let c = cookie_client();
    let (status, _, first) = get(&c, &proxy.url("/"), "shop.test");
    assert_eq!(status, 200);
    assert!(first == "name-a" || first == "name-b", "{first}");
    // Eight more over ~1.6 s: several refreshes pass; the session stays.
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, _, body) = get(&c, &proxy.url("/"), "shop.test");
        assert_eq!(
            (status, body.as_str()),
            (200, first.as_str()),
            "request {i}"
        );
    }
    let passes = proxy.log_lines("dns refresh: 2 host-name endpoint(s) resolved");
    assert!(
        passes.len() >= 3,
        "re-resolved only {} times:\n{}",
        passes.len(),
        proxy.logs()
    );
    assert!(
        proxy.log_lines("now resolves to").is_empty(),
        "localhost did not move:\n{}",
        proxy.logs()
    );
    assert!(
        proxy.log_lines("cannot resolve").is_empty(),
        "{}",
        proxy.logs()
    );
}

#[test]
fn dns_refresh_is_validated() {
    let (code, _, err) = tether()
        .listener(free_port())
        .dns_refresh(0.0)
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([Endpoint::at("e", "127.0.0.1:9")]))
        .check();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tether.dns_refresh"), "{err}");
}
