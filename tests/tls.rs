//! TLS listeners and `https` monitors, with a certificate generated for the test.
//! Tether's own TLS listener is the `https` endpoint the monitors probe: it
//! forwards the probe to a plain upstream by Host.

mod support;

use std::path::Path;
use std::time::Duration;

use support::api::{endpoint_view, wait_for_health};
use support::*;

#[test]
fn tls_listener_serves_https_and_https_monitors_verify_certificates() {
    let backend = Upstream::healthy("backend");
    let dir = tempfile::TempDir::new().unwrap();
    let tls = free_port();
    // Tether's own TLS listener, asking for backend.test.
    let itself = |name: &str| Endpoint::at(name, &format!("127.0.0.1:{tls}")).host("backend.test");
    let https = Monitor::https("/health")
        .interval(0.2)
        .timeout(0.2)
        .retries(0);
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .tls_listener(tls, &Tls::self_signed(dir.path()))
        .load_balancer("backend.test", lb(["backend"]))
        .load_balancer("insecure.test", lb(["insecure"]))
        .load_balancer("strict.test", lb(["strict"]))
        .pool("backend", pool([&backend]))
        .pool(
            "insecure",
            pool([itself("self-insecure")]).monitor("https-insecure"),
        )
        .pool(
            "strict",
            pool([itself("self-strict")]).monitor("https-strict"),
        )
        .monitor("https-insecure", https.clone().allow_insecure())
        .monitor("https-strict", https)
        .start();
    assert!(wait_for_port(
        format!("127.0.0.1:{tls}").parse().unwrap(),
        Duration::from_secs(5)
    ));

    // HTTPS through the TLS listener; the upstream learns the scheme.
    // HTTP/1.1: the test names the host in `Host`, which h2 forbids to differ from :authority.
    let https = reqwest::blocking::Client::builder()
        .no_proxy()
        .http1_only()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (status, _, body) = get(
        &https,
        &format!("https://127.0.0.1:{tls}/echo"),
        "backend.test",
    );
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    // The strict monitor rejects the self-signed certificate; the insecure one passes.
    wait_for_health(
        &proxy,
        "strict",
        "self-strict",
        false,
        Duration::from_secs(5),
    );
    assert!(
        wait_until(Duration::from_secs(5), || backend.health_checks() >= 3),
        "https probes with allow_insecure did not reach the backend through TLS"
    );
    let insecure = endpoint_view(&proxy, "insecure", "self-insecure");
    assert_eq!(
        (&insecure["healthy"], &insecure["last_check"]["ok"]),
        (&serde_json::json!(true), &serde_json::json!(true)),
        "{insecure}"
    );
    assert!(
        !proxy.logs().contains("endpoint self-insecure"),
        "{}",
        proxy.logs()
    );
    // The pool whose only endpoint failed its monitor has nothing usable.
    let (status, _, body) = get(&client(), &proxy.url("/"), "strict.test");
    assert_eq!(status, 503, "{body}");
}

/// Plain HTTP and HTTPS listeners over one upstream; `secure.test` has `always_use_https`.
fn https_setup(dir: &Path, up: &Upstream) -> (TetherProc, u16) {
    let tls = free_port();
    let proxy = tether()
        .listener(free_port())
        .tls_listener(tls, &Tls::self_signed(dir))
        .load_balancer(
            "secure.test",
            lb(["p"]).always_use_https(true).affinity(Affinity::Cookie),
        )
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([up]))
        .start();
    assert!(wait_for_port(
        format!("127.0.0.1:{tls}").parse().unwrap(),
        Duration::from_secs(5)
    ));
    (proxy, tls)
}

#[test]
fn always_use_https_redirects_plain_http_with_301() {
    let up = Upstream::healthy("u");
    let dir = tempfile::TempDir::new().unwrap();
    let (proxy, tls) = https_setup(dir.path(), &up);
    let (status, headers, _) = get(&client(), &proxy.url("/cart?id=7"), "Secure.Test");
    assert_eq!(status, 301);
    assert_eq!(
        header(&headers, "location").as_deref(),
        Some(format!("https://secure.test:{tls}/cart?id=7").as_str())
    );
    assert_eq!(up.requests(), 0, "nothing is proxied over plain HTTP");
    // Other load balancers are not redirected.
    assert_eq!(get(&client(), &proxy.url("/"), "other.test").0, 200);

    // Over HTTPS it is served, and Auto cookie attributes become Secure / None.
    let https = reqwest::blocking::Client::builder()
        .no_proxy()
        .http1_only()
        .danger_accept_invalid_certs(true)
        .resolve("secure.test", format!("127.0.0.1:{tls}").parse().unwrap())
        .build()
        .unwrap();
    let (status, headers, _) = get(
        &https,
        &format!("https://secure.test:{tls}/"),
        "secure.test",
    );
    assert_eq!(status, 200);
    let line = set_cookie_line(&headers, "__cflb").unwrap();
    assert!(line.ends_with("SameSite=None; Secure"), "{line}");
}

#[test]
fn http2_over_tls_routes_by_authority_and_reads_split_cookies() {
    let up = Upstream::healthy("u");
    let dir = tempfile::TempDir::new().unwrap();
    let (_proxy, tls) = https_setup(dir.path(), &up);
    let h2 = reqwest::blocking::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .resolve("secure.test", format!("127.0.0.1:{tls}").parse().unwrap())
        .build()
        .unwrap();
    let url = format!("https://secure.test:{tls}/echo");
    let response = h2.get(&url).send().unwrap();
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN offers h2"
    );
    assert_eq!(response.status(), 200);
    let cookie = set_cookie_value(response.headers(), "__cflb").expect("secure.test by :authority");
    // HTTP/2 clients may send each cookie in its own header: __cflb is found and stripped.
    let response = h2
        .get(&url)
        .header("cookie", "a=1")
        .header("cookie", format!("__cflb={cookie}"))
        .header("cookie", "b=2")
        .send()
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(
        set_cookie_line(response.headers(), "__cflb").is_none(),
        "the split cookie was read: a hit sets no cookie"
    );
    let echo: serde_json::Value = serde_json::from_str(&response.text().unwrap()).unwrap();
    let cookies = echo["headers"]["cookie"].to_string();
    assert!(
        cookies.contains("a=1") && cookies.contains("b=2"),
        "{cookies}"
    );
    assert!(!cookies.contains("__cflb"), "{cookies}");
}

/// `tether -t` on a config whose TLS listener uses `cert` and `key` must fail
/// with a message naming the key path `key` (`cert_path` or `key_path`),
/// never answer "configuration OK".
fn assert_tls_files_rejected(cert_path: String, key_path: String, key: &str) {
    let (code, out, err) = tether()
        .tls_listener(
            free_port(),
            &Tls {
                cert_path,
                key_path,
            },
        )
        .load_balancer("*", lb(["p"]))
        .pool("p", pool([Endpoint::at("a", "127.0.0.1:1")]))
        .check();
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("configuration OK"));
    assert!(
        err.contains(&format!("tether.listeners[0].tls.{key}: ")),
        "{err}"
    );
}

#[test]
fn a_certificate_that_does_not_parse_fails_the_check_before_anything_starts() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = Tls::self_signed(dir.path()).key_path;
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert_tls_files_rejected(bad.display().to_string(), key, "cert_path");
}

#[test]
fn a_key_that_does_not_fit_the_certificate_fails_the_check() {
    let one = tempfile::TempDir::new().unwrap();
    let two = tempfile::TempDir::new().unwrap();
    let cert = Tls::self_signed(one.path()).cert_path;
    let other_key = Tls::self_signed(two.path()).key_path;
    assert_tls_files_rejected(cert, other_key, "key_path");
}
