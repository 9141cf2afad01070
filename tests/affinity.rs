//! Session affinity (SPEC 4 and 7) through the real binary: the `__cflb`
//! cookie triad, expiry, other load balancers' cookies, keep-alive, cookie
//! attributes, key rotation, `ip_cookie`, `source_ip`, `header`, re-pinning,
//! drain, zero-downtime failover, and two processes agreeing.
//! Every config sets `decision_header: true` so responses explain themselves.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use support::api::wait_for_health;
use support::cflb::{keys_file, mint, mint_v1, unix_now};
use support::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// `balancer` as the load balancer `"*"`, over pool `p` of `ups`, with the decision
/// header.
fn sticky<'a>(balancer: LoadBalancer, ups: impl IntoIterator<Item = &'a Upstream>) -> Tether {
    tether()
        .listener(free_port())
        .decision_header()
        .load_balancer("*", balancer)
        .pool("p", pool(ups))
}

/// A load balancer over pool `p` with this affinity.
fn on_p(affinity: Affinity) -> LoadBalancer {
    lb(["p"]).affinity(affinity)
}

/// GET / for host `x` with an optional `__cflb` cookie: (status, answering endpoint, decision, new cookie).
fn visit(proxy: &TetherProc, cookie: Option<&str>) -> (u16, String, String, Option<String>) {
    visit_as(&client(), proxy, "x", cookie)
}

fn three() -> (Upstream, Upstream, Upstream) {
    (
        Upstream::healthy("a"),
        Upstream::healthy("b"),
        Upstream::healthy("c"),
    )
}

#[test]
fn cookie_triad_no_cookie_invalid_cookie_valid_cookie() {
    let (a, b, c) = three();
    let proxy = sticky(on_p(Affinity::Cookie), [&a, &b, &c]).start();

    // No cookie: normal routing, a new pin.
    let (status, first, d, cookie) = visit(&proxy, None);
    assert_eq!((status, d.as_str()), (200, "new"));
    let cookie = cookie.expect("a new session gets a cookie");
    assert_eq!(
        cookie.len(),
        66,
        "a version 2 cookie, with its nonce: {cookie}"
    );

    // Valid cookie: the same endpoint, no Set-Cookie, every time.
    for _ in 0..10 {
        assert_eq!(
            visit(&proxy, Some(&cookie)),
            (200, first.clone(), "hit".to_string(), None)
        );
    }

    // Invalid or tampered cookie: treated as absent, a new pin.
    let mut tampered = cookie.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "garbage", "", &cookie[..40]] {
        let (status, _, d, new) = visit(&proxy, Some(bad));
        assert_eq!((status, d.as_str()), (200, "invalid"), "cookie {bad:?}");
        assert!(new.is_some(), "an invalid cookie is replaced");
    }
}

#[test]
fn set_cookie_line_and_stripping() {
    let a = Upstream::healthy("a");
    let proxy = sticky(on_p(Affinity::Cookie), [&a]).start();
    let client = client();
    // Our cookie is added beside the upstream's own Set-Cookie.
    let (_, headers, _) = get(&client, &proxy.url("/set-cookie"), "x");
    let line = set_cookie_line(&headers, "__cflb").unwrap();
    let value = set_cookie_value(&headers, "__cflb").unwrap();
    assert_eq!(
        line,
        format!("__cflb={value}; Path=/; Max-Age=82800; HttpOnly; SameSite=Lax")
    );
    assert_eq!(set_cookie_value(&headers, "upstream").as_deref(), Some("a"));

    // __cflb never reaches the endpoint; other cookies pass untouched.
    let cookie = format!("theme=dark; __cflb={value}; cart=42");
    let (_, _, body) = get_h(
        &client,
        &proxy.url("/echo"),
        &[("host", "x"), ("cookie", &cookie)],
    );
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["cookie"][0], "theme=dark; cart=42");
    let (_, _, body) = get_h(
        &client,
        &proxy.url("/echo"),
        &[("host", "x"), ("cookie", "a=1")],
    );
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["cookie"][0], "a=1");
}

#[test]
fn expired_foreign_and_unknown_cookies_are_repinned() {
    let (a, b, c) = three();
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let proxy = sticky(on_p(Affinity::Cookie), [&a, &b, &c])
        .cookie_keys_file(&keys)
        .load_balancer("shop.test", on_p(Affinity::Cookie))
        .start();
    let client = client();
    let later = unix_now() + 3600;

    // A cookie minted to the documented format is honoured, and so is a
    // version 1 cookie made before the nonce...
    let v1 = mint_v1(KEY, "*", "p", "b", later);
    assert_eq!(
        visit(&proxy, Some(&v1)),
        (200, "b".into(), "hit".into(), None)
    );
    let to_b = mint(KEY, "*", "p", "b", later);
    assert_eq!(
        visit(&proxy, Some(&to_b)),
        (200, "b".into(), "hit".into(), None)
    );
    // ...until it has expired: the proxy enforces expiry, not only the client.
    let expired = mint(KEY, "*", "p", "b", unix_now() - 5);
    let (_, _, d, new) = visit(&proxy, Some(&expired));
    assert_eq!(d, "expired");
    assert!(new.is_some());
    // Another load balancer's cookie, another key, an unknown endpoint: invalid.
    for (cookie, what) in [
        (
            mint(KEY, "shop.test", "p", "b", later),
            "another load balancer's",
        ),
        (
            mint(b"another key, 32 bytes long......", "*", "p", "b", later),
            "another key's",
        ),
        (mint(KEY, "*", "p", "zz", later), "an unknown endpoint's"),
    ] {
        let (status, _, d, new) = visit_as(&client, &proxy, "x", Some(&cookie));
        assert_eq!((status, d.as_str()), (200, "invalid"), "{what} cookie");
        assert!(new.is_some(), "{what} cookie is replaced");
    }
    // The same cookie is honoured by the load balancer it belongs to.
    let shop = mint(KEY, "shop.test", "p", "c", later);
    assert_eq!(
        visit_as(&client, &proxy, "shop.test", Some(&shop)),
        (200, "c".into(), "hit".into(), None)
    );
}

#[tokio::test]
async fn two_requests_on_one_connection_follow_their_own_cookies() {
    use http_body_util::BodyExt;
    let (a, b, c) = three();
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let config = sticky(on_p(Affinity::Cookie), [&a, &b, &c]).cookie_keys_file(&keys);
    let proxy = tokio::task::spawn_blocking(move || config.start())
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let later = unix_now() + 3600;
    // One kept-alive connection, alternating pins: each request goes where its cookie says.
    for target in ["a", "c", "b", "a", "c"] {
        let request = http::Request::get("/")
            .header("host", "x")
            .header(
                "cookie",
                format!("__cflb={}", mint(KEY, "*", "p", target, later)),
            )
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            target.as_bytes(),
            "one connection, cookie for {target}"
        );
    }
}

#[test]
fn cookie_attributes_follow_samesite_secure_and_always_use_https() {
    let a = Upstream::healthy("a");
    let dir = tempfile::TempDir::new().unwrap();
    let attrs = |samesite: Option<SameSite>, secure: Option<Secure>| Attributes {
        samesite,
        secure,
        ..Attributes::default()
    };
    let cases = [
        ("auto.test", attrs(None, None), false, "SameSite=Lax"),
        (
            "lax.test",
            attrs(Some(SameSite::Lax), None),
            false,
            "SameSite=Lax",
        ),
        (
            "strict.test",
            attrs(Some(SameSite::Strict), None),
            false,
            "SameSite=Strict",
        ),
        (
            "none.test",
            attrs(Some(SameSite::None), Some(Secure::Always)),
            false,
            "SameSite=None; Secure",
        ),
        (
            "always.test",
            attrs(None, Some(Secure::Always)),
            false,
            "SameSite=Lax; Secure",
        ),
        (
            "never.test",
            attrs(Some(SameSite::Strict), Some(Secure::Never)),
            false,
            "SameSite=Strict",
        ),
        (
            "https.test",
            attrs(None, None),
            true,
            "SameSite=None; Secure",
        ),
        (
            "https-never.test",
            attrs(Some(SameSite::Lax), Some(Secure::Never)),
            true,
            "SameSite=Lax",
        ),
        (
            "https-strict.test",
            attrs(Some(SameSite::Strict), None),
            true,
            "SameSite=Strict; Secure",
        ),
    ];
    let tls_port = free_port();
    let mut config = tether()
        .listener(free_port())
        .tls_listener(tls_port, &Tls::self_signed(dir.path()))
        .pool("p", pool([&a]));
    for (host, attributes, https, _) in &cases {
        let balancer = on_p(Affinity::Cookie)
            .ttl(3600)
            .attributes(attributes.clone())
            .always_use_https(*https);
        config = config.load_balancer(host, balancer);
    }
    let proxy = config.start();
    assert!(wait_for_port(
        format!("127.0.0.1:{tls_port}").parse().unwrap(),
        Duration::from_secs(5)
    ));
    let https = reqwest::blocking::Client::builder()
        .no_proxy()
        .http1_only()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let plain = client();
    for (host, _, over_https, expected) in &cases {
        let (client, url) = if *over_https {
            (&https, format!("https://127.0.0.1:{tls_port}/"))
        } else {
            (&plain, proxy.url("/"))
        };
        let (status, headers, body) = get(client, &url, host);
        assert_eq!(status, 200, "{host}: {body}");
        let line = set_cookie_line(&headers, "__cflb").unwrap();
        let attributes = line.split_once("; ").unwrap().1;
        assert_eq!(
            attributes,
            format!("Path=/; Max-Age=3600; HttpOnly; {expected}"),
            "{host}"
        );
    }
}

#[test]
fn key_rotation_first_key_signs_all_verify() {
    let (a, b, c) = three();
    let dir = tempfile::TempDir::new().unwrap();
    let old: &[u8] = b"the old key, thirty-two bytes!!!";
    let new: &[u8] = b"the new key, thirty-two bytes!!!";
    let start = |keys: &[&[u8]], name: &str| {
        let file = keys_file(dir.path(), name, keys);
        sticky(on_p(Affinity::Cookie), [&a, &b, &c])
            .cookie_keys_file(&file)
            .start()
    };
    let proxy = start(&[old], "old");
    let (_, first, _, signed_old) = visit(&proxy, None);
    let signed_old = signed_old.unwrap();
    drop(proxy);

    // Rotated: the new key signs, the old one still verifies.
    let proxy = start(&[new, old], "rotated");
    assert_eq!(
        visit(&proxy, Some(&signed_old)),
        (200, first.clone(), "hit".into(), None)
    );
    let (_, _, d, signed_new) = visit(&proxy, None);
    assert_eq!(d, "new");
    let signed_new = signed_new.unwrap();
    assert_eq!(visit(&proxy, Some(&signed_new)).2, "hit");
    drop(proxy);

    // The old key retired: its cookies are invalid, the new key's still hold.
    let proxy = start(&[new], "retired");
    assert_eq!(visit(&proxy, Some(&signed_old)).2, "invalid");
    assert_eq!(visit(&proxy, Some(&signed_new)).2, "hit");
}

/// For each of 16 client addresses: the endpoint of its first request,
/// checked to be the same on a repeat without cookie.
fn first_picks(proxy: &TetherProc, expect_cookie: bool) -> HashMap<IpAddr, String> {
    (1..=16u8)
        .map(|last| {
            let ip: IpAddr = format!("127.0.0.{last}").parse().unwrap();
            let client = client_from(ip);
            let (status, first, d, cookie) = visit_as(&client, proxy, "x", None);
            assert_eq!(status, 200);
            assert_eq!(cookie.is_some(), expect_cookie, "{ip}: {d}");
            let (_, again, _, _) = visit_as(&client, proxy, "x", None);
            assert_eq!(first, again, "{ip}: the first pick is stable");
            (ip, first)
        })
        .collect()
}

#[test]
fn ip_cookie_first_pick_is_stable_per_client_and_across_processes() {
    let (a, b, c) = three();
    let config = sticky(on_p(Affinity::IpCookie), [&a, &b, &c]);
    let one = first_picks(&config.start(), true);
    let two = first_picks(&config.start(), true);
    assert_eq!(one, two, "two processes with the same config agree");
    let spread: HashSet<_> = one.values().collect();
    assert!(spread.len() >= 2, "16 clients on one endpoint: {one:?}");
}

#[test]
fn source_ip_pins_without_a_cookie_and_agrees_across_processes() {
    let (a, b, c) = three();
    let config = sticky(on_p(Affinity::SourceIp), [&a, &b, &c]);
    let proxy = config.start();
    let one = first_picks(&proxy, false);
    let ip: IpAddr = "127.0.0.3".parse().unwrap();
    let (_, _, d, _) = visit_as(&client_from(ip), &proxy, "x", None);
    assert_eq!(d, "hit", "the table remembers the client");
    let two = first_picks(&config.start(), false);
    assert_eq!(one, two);
    assert!(one.values().collect::<HashSet<_>>().len() >= 2, "{one:?}");
}

fn with_headers(proxy: &TetherProc, headers: &[(&str, &str)]) -> (String, String) {
    let mut all = vec![("host", "x")];
    all.extend_from_slice(headers);
    let (status, h, body) = get_h(&client(), &proxy.url("/"), &all);
    assert_eq!(status, 200);
    assert!(
        set_cookie_line(&h, "__cflb").is_none(),
        "header affinity sets no cookie"
    );
    let (d, endpoint) = decision_of(&h);
    assert_eq!(endpoint, body);
    (d, body)
}

#[test]
fn header_affinity_with_and_without_require_all_headers() {
    let (a, b, c) = three();
    let any = sticky(
        on_p(Affinity::Header).headers(["X-User", "X-Tenant"]),
        [&a, &b, &c],
    )
    .start();
    assert_eq!(
        with_headers(&any, &[]).0,
        "none",
        "no configured header: no session"
    );
    let (d, pinned) = with_headers(&any, &[("x-user", "alice")]);
    assert_eq!(d, "new");
    for _ in 0..5 {
        assert_eq!(
            with_headers(&any, &[("X-User", "alice")]),
            ("hit".into(), pinned.clone())
        );
    }
    assert_eq!(
        with_headers(&any, &[("x-user", "alice"), ("x-tenant", "t1")]).0,
        "new",
        "a changed set of header values is a new session"
    );

    let all = sticky(
        on_p(Affinity::Header)
            .headers(["X-User", "X-Tenant"])
            .require_all_headers(true),
        [&a, &b, &c],
    )
    .start();
    assert_eq!(with_headers(&all, &[("x-user", "alice")]).0, "none");
    let both = [("x-user", "alice"), ("x-tenant", "t1")];
    let (d, pinned) = with_headers(&all, &both);
    assert_eq!(d, "new");
    assert_eq!(with_headers(&all, &both), ("hit".into(), pinned));
}

#[test]
fn header_affinity_on_named_cookies() {
    let (a, b, c) = three();
    let proxy = sticky(on_p(Affinity::Header).headers(["cookie:sid"]), [&a, &b, &c]).start();
    assert_eq!(with_headers(&proxy, &[("cookie", "theme=dark")]).0, "none");
    let (d, pinned) = with_headers(&proxy, &[("cookie", "sid=42; theme=dark")]);
    assert_eq!(d, "new");
    // Other cookies do not matter; the named one does.
    assert_eq!(
        with_headers(&proxy, &[("cookie", "theme=light; sid=42")]),
        ("hit".into(), pinned)
    );
    assert_eq!(with_headers(&proxy, &[("cookie", "sid=43")]).0, "new");
}

#[test]
fn a_session_is_repinned_when_its_endpoint_turns_unhealthy() {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .decision_header()
        .load_balancer("*", on_p(Affinity::Cookie))
        .pool("p", pool([&a, &b]).monitor("fast"))
        .monitor("fast", Monitor::every(0.2))
        .start();
    let (_, pinned, _, cookie) = visit(&proxy, None);
    let cookie = cookie.unwrap();
    let (sick, other) = if pinned == "a" { (&a, "b") } else { (&b, "a") };
    sick.set_healthy(false);
    wait_for_health(&proxy, "p", sick.name(), false, Duration::from_secs(5));
    let (status, now_on, d, new_cookie) = visit(&proxy, Some(&cookie));
    assert_eq!(
        (status, now_on.as_str(), d.as_str()),
        (200, other, "repin_unhealthy")
    );
    let new_cookie = new_cookie.expect("re-pinned with a new cookie");
    assert_eq!(visit(&proxy, Some(&new_cookie)).2, "hit");
}

#[test]
fn a_disabled_endpoint_drains_then_its_sessions_move() {
    let (a, b, c) = three();
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let config = |drain: u64| {
        tether()
            .listener(free_port())
            .decision_header()
            .cookie_keys_file(&keys)
            .load_balancer("*", on_p(Affinity::Cookie).drain(drain))
            .pool("p", pool([endpoint(&a).enabled(false)]).and(&b).and(&c))
    };
    // A session pinned to `a` (by an earlier process sharing the keys).
    let on_a = mint(KEY, "*", "p", "a", unix_now() + 3600);

    // drain_duration 0: disabling is immediate.
    let proxy = config(0).start();
    assert_eq!(visit(&proxy, Some(&on_a)).2, "repin_drained");
    drop(proxy);

    // drain_duration 2: the session stays on `a`, new sessions never go there...
    let proxy = config(2).start();
    assert_eq!(
        visit(&proxy, Some(&on_a)),
        (200, "a".into(), "hit".into(), None)
    );
    for _ in 0..20 {
        let (_, endpoint, d, _) = visit(&proxy, None);
        assert_eq!(d, "new");
        assert_ne!(endpoint, "a", "no new session on a draining endpoint");
    }
    // ...until the drain is over: then it is re-pinned elsewhere.
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (_, endpoint, d, cookie) = visit(&proxy, Some(&on_a));
            last = format!("{endpoint} {d}");
            d == "repin_drained" && endpoint != "a" && cookie.is_some()
        }),
        "still {last} after the drain"
    );
}

/// A cookie session pinned to `a`, whose port refuses connections from now on
/// while no monitor has noticed; `b` is live.
struct PinnedToDeadEndpoint {
    proxy: TetherProc,
    a: Upstream,
    b: Upstream,
    on_a: String,
    _keys: tempfile::TempDir,
}

fn pinned_to_dead_endpoint(mode: Failover) -> PinnedToDeadEndpoint {
    let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let balancer = on_p(Affinity::Cookie).zero_downtime_failover(mode);
    let proxy = sticky(balancer, [&a, &b]).cookie_keys_file(&keys).start();
    let on_a = mint(KEY, "*", "p", "a", unix_now() + 3600);
    a.stop();
    PinnedToDeadEndpoint {
        proxy,
        a,
        b,
        on_a,
        _keys: dir,
    }
}

#[test]
fn zero_downtime_failover_none_gives_502() {
    let PinnedToDeadEndpoint {
        proxy,
        a: _a,
        b,
        on_a,
        _keys,
    } = pinned_to_dead_endpoint(Failover::None);
    let (status, body, _, _) = visit(&proxy, Some(&on_a));
    assert_eq!(status, 502, "{body}");
    assert_eq!(b.requests(), 0, "a pinned session is not moved with none");
    // A request without a pin is still retried elsewhere.
    assert_eq!(visit(&proxy, None).0, 200);
}

#[test]
fn zero_downtime_failover_temporary_keeps_the_pin() {
    let PinnedToDeadEndpoint {
        proxy,
        a,
        b: _b,
        on_a,
        _keys,
    } = pinned_to_dead_endpoint(Failover::Temporary);
    for _ in 0..3 {
        assert_eq!(
            visit(&proxy, Some(&on_a)),
            (200, "b".into(), "failover_temporary".into(), None),
            "served elsewhere, cookie left as it was"
        );
    }
    a.restart();
    assert_eq!(
        visit(&proxy, Some(&on_a)),
        (200, "a".into(), "hit".into(), None),
        "the session returns as soon as its endpoint answers"
    );
}

#[test]
fn zero_downtime_failover_sticky_repins() {
    let PinnedToDeadEndpoint {
        proxy,
        a,
        b: _b,
        on_a,
        _keys,
    } = pinned_to_dead_endpoint(Failover::Sticky);
    let (status, endpoint, d, new_cookie) = visit(&proxy, Some(&on_a));
    assert_eq!(
        (status, endpoint.as_str(), d.as_str()),
        (200, "b", "failover_sticky")
    );
    let on_b = new_cookie.expect("re-pinned by Set-Cookie");
    a.restart();
    assert_eq!(
        visit(&proxy, Some(&on_b)),
        (200, "b".into(), "hit".into(), None)
    );
}

#[test]
fn table_sessions_follow_zero_downtime_failover_too() {
    for (mode, back_to_a) in [(Failover::Temporary, true), (Failover::Sticky, false)] {
        let (a, b) = (Upstream::healthy("a"), Upstream::healthy("b"));
        let balancer = on_p(Affinity::Header)
            .headers(["X-User"])
            .zero_downtime_failover(mode);
        let proxy = sticky(balancer, [&a, &b]).start();
        // Find a user whose session lands on `a`.
        let user = (0..64)
            .map(|i| format!("user-{i}"))
            .find(|u| with_headers(&proxy, &[("x-user", u)]).1 == "a")
            .expect("some user hashes to a");
        assert_eq!(with_headers(&proxy, &[("x-user", &user)]).0, "hit");
        a.stop();
        assert_eq!(
            with_headers(&proxy, &[("x-user", &user)]),
            (format!("failover_{mode}"), "b".to_string())
        );
        a.restart();
        let (d, endpoint) = with_headers(&proxy, &[("x-user", &user)]);
        assert_eq!(d, "hit", "{mode}");
        assert_eq!(endpoint == "a", back_to_a, "{mode}: served by {endpoint}");
    }
}

#[test]
fn failover_targets_agree_across_processes() {
    let ups = ["a", "b", "c", "d", "e"].map(Upstream::healthy);
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let balancer = on_p(Affinity::Cookie).zero_downtime_failover(Failover::Temporary);
    let config = sticky(balancer, &ups).cookie_keys_file(&keys);
    let (one, two) = (config.start(), config.start());
    ups[0].stop();
    let mut targets = HashSet::new();
    for i in 0..12u64 {
        let cookie = mint(KEY, "*", "p", "a", unix_now() + 3600 + i);
        let (_, first, d, _) = visit(&one, Some(&cookie));
        assert_eq!(d, "failover_temporary");
        assert_eq!(
            visit(&two, Some(&cookie)).1,
            first,
            "cookie {i}: both processes agree"
        );
        assert_eq!(visit(&one, Some(&cookie)).1, first, "and it is stable");
        targets.insert(first);
    }
    assert!(
        targets.len() >= 2,
        "failed-over sessions spread: {targets:?}"
    );
}

#[test]
fn a_browser_stays_put_while_cookieless_clients_spread() {
    let (a, b, c) = three();
    let proxy = sticky(on_p(Affinity::Cookie), [&a, &b, &c]).start();
    let browser = cookie_client();
    let mut seen_by_browser = HashSet::new();
    let mut seen_without = HashSet::new();
    let plain = client();
    for _ in 0..100 {
        let (status, h, body) = get(&browser, &proxy.url("/"), "x");
        assert_eq!(status, 200);
        assert!(upstream_of(&h).is_some());
        seen_by_browser.insert(body);
        seen_without.insert(get(&plain, &proxy.url("/"), "x").2);
    }
    assert_eq!(seen_by_browser.len(), 1, "{seen_by_browser:?}");
    assert!(seen_without.len() >= 2, "{seen_without:?}");
}
