use super::*;
use crate::rules::parse::parse;
use http::{HeaderMap, HeaderValue};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn holds(src: &str, uri: &str, h: &HeaderMap) -> bool {
    let req = Request {
        host: "www.example.com",
        uri,
        method: "GET",
        headers: h,
        client: Some("10.1.2.3".parse().unwrap()),
        tls: false,
    };
    eval(&parse(src).unwrap(), &req)
}

#[test]
fn cloudflare_documented_examples() {
    let none = HeaderMap::new();
    // Path-based routing (Cloudflare's load balancing rules examples).
    assert!(holds(
        r#"starts_with(http.request.uri.path, "/api/")"#,
        "/api/v1?x=1",
        &none
    ));
    assert!(!holds(
        r#"starts_with(http.request.uri.path, "/api/")"#,
        "/apix",
        &none
    ));
    assert!(holds(
        r#"http.request.uri.path contains "/testing""#,
        "/a/testing/b",
        &none
    ));
    assert!(holds(r#"http.request.uri.path eq "/old""#, "/old?q", &none));
    assert!(!holds(r#"http.request.uri eq "/old""#, "/old?q", &none));
    assert!(holds(r#"http.request.uri eq "/old?q""#, "/old?q", &none));
    assert!(holds(
        r#"http.request.uri.query eq "a=1&b=2""#,
        "/p?a=1&b=2",
        &none
    ));
    assert!(holds(r#"http.host eq "www.example.com""#, "/", &none));
    assert!(holds(
        r#"(http.request.uri.path ~ "^.*wp-login.php$" or http.request.uri.path ~ "^.*xmlrpc.php$") and ip.src ne 93.184.216.34"#,
        "/blog/wp-login.php",
        &none
    ));
    assert!(holds(
        r#"ip.src in {10.0.0.0/8 192.168.0.0/16}"#,
        "/",
        &none
    ));
    assert!(!holds(r#"ip.src in {172.16.0.0/12}"#, "/", &none));
    assert!(holds(r#"ip.src == 10.1.2.3"#, "/", &none));
    assert!(holds(r#"not ssl"#, "/", &none));
    assert!(holds(r#"ssl eq false"#, "/", &none));
    assert!(holds(
        r#"http.request.method in {"GET" "HEAD"}"#,
        "/",
        &none
    ));
    assert!(holds(
        r#"lower(http.request.uri.path) eq "/admin""#,
        "/ADMIN",
        &none
    ));
    assert!(holds(r#"upper(http.request.method) == "GET""#, "/", &none));
    assert!(holds(
        r#"len(http.request.uri.path) in {1..4}"#,
        "/abc",
        &none
    ));
    assert!(holds(r#"len(http.request.uri.path) ge 5"#, "/abcd", &none));
    assert!(holds(
        r#"ends_with(http.request.uri.path, ".png")"#,
        "/a.png",
        &none
    ));
}

#[test]
fn headers_cookies_and_arrays() {
    let h = headers(&[
        ("content-type", "text/html"),
        ("content-type", "application/json"),
        ("cookie", "a=1; beta=yes"),
        ("cookie", "c=3"),
        ("user-agent", "Googlebot/2.1"),
        ("x-api-key", "K1"),
    ]);
    assert!(holds(
        r#"any(http.request.headers["Content-Type"][*] == "application/json")"#,
        "/",
        &h
    ));
    assert!(!holds(
        r#"all(http.request.headers["content-type"][*] == "application/json")"#,
        "/",
        &h
    ));
    assert!(holds(
        r#"all(lower(http.request.headers["content-type"][*]) contains "t")"#,
        "/",
        &h
    ));
    assert!(holds(
        r#"http.request.headers["content-type"][1] eq "application/json""#,
        "/",
        &h
    ));
    assert!(!holds(
        r#"http.request.headers["content-type"][2] ne "x""#,
        "/",
        &h
    ));
    assert!(holds(
        r#"http.request.headers["x-api-key"][0] eq "K1""#,
        "/",
        &h
    ));
    assert!(!holds(
        r#"http.request.headers["missing"][0] eq "K1""#,
        "/",
        &h
    ));
    assert!(holds(
        r#"http.request.cookies["beta"][0] eq "yes""#,
        "/",
        &h
    ));
    assert!(holds(
        r#"any(http.request.cookies["c"][*] == "3")"#,
        "/",
        &h
    ));
    assert!(!holds(
        r#"any(http.request.cookies["nope"][*] == "3")"#,
        "/",
        &h
    ));
    assert!(holds(r#"http.user_agent matches "(?i)googlebot""#, "/", &h));
    assert!(holds(
        r#"any(starts_with(http.request.headers["content-type"][*], "application/"))"#,
        "/",
        &h
    ));
}

#[test]
fn logic() {
    let none = HeaderMap::new();
    assert!(holds(
        r#"ssl xor http.host eq "www.example.com""#,
        "/",
        &none
    ));
    assert!(!holds(
        r#"not ssl ^^ http.host eq "www.example.com""#,
        "/",
        &none
    ));
    assert!(holds(
        r#"ssl || !ssl && http.request.uri.path eq "/""#,
        "/",
        &none
    ));
    assert!(!holds(
        r#"(ssl || !ssl) && http.request.uri.path eq "/x""#,
        "/",
        &none
    ));
    assert!(holds("", "/", &none));
}
