//! The status page at the admin listener's `/`, in a real headless Chromium
//! (Debian's `chromium`; scripts/test.sh installs it when missing): it
//! renders the endpoints of a running Tether, a drain started in the page
//! (through the URL fragment, which acts on load) shows up in the admin API,
//! and a screenshot is written to target/status-page.png.
//!
//! Chromium runs with `--virtual-time-budget`, so it returns once the page's
//! fetches and a few refreshes have run; every run is killed after 60 s.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use support::*;

const TOKEN: &str = "page-s3cret";

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return path;
        }
    }
    panic!("no chromium on PATH: `apt-get install -y chromium` (scripts/test.sh does it)");
}

/// Runs headless Chromium on `url` with `args`; its stdout. At most 60 s.
fn run_chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
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
    std::fs::read_to_string(out.path()).unwrap()
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

#[test]
fn the_page_renders_the_endpoints_and_drains_one() {
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
    let (status, _, page) = get(&c, &proxy.admin_url("/"), "admin");
    assert_eq!(status, 200);
    assert!(page.contains("<title>Tether status</title>"));

    let dom = run_chromium(
        &proxy.admin_url(&format!("/#token={TOKEN}")),
        &["--dump-dom"],
    );
    assert!(dom.contains("data-loaded=\"yes\""), "not rendered:\n{dom}");
    for ep in ["p/web-a", "p/web-b"] {
        assert!(
            dom.contains(&format!("data-endpoint=\"{ep}\"")),
            "{ep} missing:\n{dom}"
        );
    }
    assert!(dom.contains("data-lb=\"shop.test\""), "{dom}");
    assert!(dom.contains("healthy"), "{dom}");
    assert_eq!(endpoint(&proxy, "web-b")["enabled"], true);

    // A drain started in the page reaches the API.
    let dom = run_chromium(
        &proxy.admin_url(&format!("/#token={TOKEN}&drain=p/web-b")),
        &["--dump-dom"],
    );
    assert!(dom.contains("data-action=\"done\""), "no action:\n{dom}");
    let b_now = endpoint(&proxy, "web-b");
    assert_eq!(b_now["enabled"], false, "{b_now}");
    assert_eq!(
        b_now["draining"][0]["load_balancer"], "shop.test",
        "{b_now}"
    );
    assert_eq!(endpoint(&proxy, "web-a")["enabled"], true);

    // A wrong token acts on nothing.
    let dom = run_chromium(
        &proxy.admin_url("/#token=wrong&enable=p/web-b"),
        &["--dump-dom"],
    );
    assert!(dom.contains("data-action=\"failed\""), "{dom}");
    assert_eq!(endpoint(&proxy, "web-b")["enabled"], false);

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
