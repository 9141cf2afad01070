//! The status page at the admin listener's `/`, in a real headless Chromium
//! (Debian's `chromium`; scripts/test.sh installs it when missing): under its
//! strict Content-Security-Policy (no inline script or style: the page's
//! script is `/status.js`) it renders the endpoints of a running Tether, with
//! the token and without one; a URL that carries an action (the old
//! `#drain=POOL/ENDPOINT`, a cross-site attack on a tokenless listener)
//! changes nothing; and a screenshot is written to target/status-page.png.
//!
//! Chromium runs with `--virtual-time-budget`, so it returns once the page's
//! fetches and a few refreshes have run; every run is killed after 60 s.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use support::browser::{chromium, HEADLESS};
use support::*;

const TOKEN: &str = "page-s3cret";

/// Runs headless Chromium on `url` with `args`; its stdout, and its stderr with the
/// page's console messages. At most 60 s.
fn run_chromium(url: &str, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium())
        .args(HEADLESS)
        .args([
            "--virtual-time-budget=6000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("start chromium");
    let ended = wait_until(Duration::from_secs(60), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromium still running after 60 s on {url}");
    }
    (
        std::fs::read_to_string(out.path()).unwrap(),
        std::fs::read_to_string(err.path()).unwrap(),
    )
}

/// The page's DOM once its script ran, checking that the browser refused nothing
/// under the page's Content-Security-Policy.
fn rendered(url: &str) -> String {
    let (dom, console) = run_chromium(url, &["--dump-dom"]);
    assert!(
        !console.contains("Content Security Policy") && !console.contains("Refused to"),
        "the browser refused part of the page:\n{console}"
    );
    assert!(
        dom.contains("data-loaded=\"yes\""),
        "not rendered:\n{dom}\n{console}"
    );
    dom
}

fn endpoint(proxy: &TetherProc, name: &str) -> serde_json::Value {
    let (status, _, v) = api::admin(
        proxy,
        Method::GET,
        &format!("/v1/pools/p/endpoints/{name}"),
        "",
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{v}");
    v["result"].clone()
}

fn endpoint_without_token(proxy: &TetherProc, name: &str) -> serde_json::Value {
    let (status, _, v) = api::admin(
        proxy,
        Method::GET,
        &format!("/v1/pools/p/endpoints/{name}"),
        "",
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["result"].clone()
}

#[test]
fn the_page_renders_under_its_strict_csp_and_takes_no_action_from_its_url() {
    let (a, b) = (Upstream::healthy("web-a"), Upstream::healthy("web-b"));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let proxy = tether()
        .listener(free_port())
        .admin_with_token(free_port(), &token_file)
        .load_balancer("shop.test", lb(["p"]).affinity(Affinity::Cookie).drain(120))
        .pool("p", pool([&a, &b]))
        .start();
    let c = client();
    for _ in 0..4 {
        assert_eq!(get(&c, &proxy.url("/"), "shop.test").0, 200);
    }

    // The page itself needs no token; it shows nothing without one.
    let (status, headers, page) = get(&c, &proxy.admin_url("/"), &proxy.admin_host());
    assert_eq!(status, 200);
    assert!(page.contains("<title>Tether status</title>"));
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    // Its script (/status.js) ran under that policy: it fetched the data with the
    // token and rendered every endpoint.
    let dom = rendered(&proxy.admin_url(&format!("/#token={TOKEN}")));
    for ep in ["p/web-a", "p/web-b"] {
        assert!(
            dom.contains(&format!("data-endpoint=\"{ep}\"")),
            "{ep} missing:\n{dom}"
        );
        assert!(
            dom.contains(&format!("data-act=\"drain\" data-ep=\"{ep}\"")),
            "no drain button for {ep}:\n{dom}"
        );
    }
    assert!(dom.contains("data-lb=\"shop.test\""), "{dom}");
    assert!(dom.contains("healthy"), "{dom}");

    // A URL that carries an action (the page used to act on `#...&drain=`) changes
    // nothing, even with the right token: only a click on a button does.
    let dom = rendered(&proxy.admin_url(&format!("/#token={TOKEN}&drain=p/web-b")));
    assert!(!dom.contains("data-action="), "an action ran:\n{dom}");
    assert_eq!(endpoint(&proxy, "web-b")["enabled"], true);
    assert!(endpoint(&proxy, "web-b")["draining"]
        .as_array()
        .unwrap()
        .is_empty());

    // The screenshot, for people.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let shot = target.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &proxy.admin_url(&format!("/#token={TOKEN}")),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
}

/// Issue 17: a page on any site could send the browser to a tokenless admin
/// listener's status page with a drain in the URL fragment, and the endpoint was
/// disabled. The page now renders and acts on nothing from its URL.
#[test]
fn a_link_to_a_tokenless_status_page_cannot_drain_an_endpoint() {
    let (a, b) = (Upstream::healthy("web-a"), Upstream::healthy("web-b"));
    let proxy = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("shop.test", lb(["p"]))
        .pool("p", pool([&a, &b]))
        .start();
    for attack in [
        "/#token=&drain=p/web-b",
        "/#drain=p/web-b",
        "/?drain=p/web-b#token=&drain=p/web-b",
    ] {
        let dom = rendered(&proxy.admin_url(attack));
        assert!(
            dom.contains("data-endpoint=\"p/web-b\""),
            "not rendered:\n{dom}"
        );
        assert!(
            !dom.contains("data-action="),
            "{attack}: an action ran:\n{dom}"
        );
        assert_eq!(
            endpoint_without_token(&proxy, "web-b")["enabled"],
            true,
            "{attack} disabled web-b"
        );
    }
}
