//! Slow start (a pool's `slow_start`) through the real binary: an endpoint
//! enabled through the admin API admits a share of its new sessions that
//! grows linearly over the window, measured at its quarter, half and
//! three-quarter points; sessions pinned before never move.
// Where in the window each burst falls is measured in real time on purpose.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::*;

const HOST: &str = "warm.test";
const WINDOW_S: u64 = 24;
const BURST: usize = 1200;

fn config(b_enabled: bool) -> (Tether, Upstream, Upstream) {
    let a = Upstream::healthy("a");
    let b = Upstream::healthy("b");
    let tether = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer(
            HOST,
            lb(["web"]).affinity(Affinity::Header).headers(["X-User"]),
        )
        .pool(
            "web",
            pool([endpoint(&a), endpoint(&b).enabled(b_enabled)])
                .origin_steering(OriginSteering::Hash)
                .slow_start(WINDOW_S),
        );
    (tether, a, b)
}

/// Which endpoint answered each user's (new or pinned) session.
fn answers(proxy: &TetherProc, users: std::ops::Range<usize>) -> Vec<String> {
    let client = client();
    users
        .map(|i| {
            let user = format!("user-{i}");
            let (status, _, body) = get_h(
                &client,
                &proxy.url("/"),
                &[("host", HOST), ("x-user", &user)],
            );
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect()
}

#[test]
fn an_enabled_endpoint_ramps_over_the_window_and_pins_stay() {
    let (ramping, _a, _b) = config(false);
    let proxy = ramping.start();
    // Sessions pinned before b is enabled: all on a.
    assert!(answers(&proxy, 0..300).iter().all(|e| e == "a"));

    api::ok(api::patch(
        &proxy,
        "/v1/pools/web/endpoints/b",
        r#"{"enabled": true}"#,
    ));
    let enabled = Instant::now();
    let window = Duration::from_secs(WINDOW_S);
    let mut bursts = Vec::new();
    for quarter in [1u32, 2, 3] {
        let at = window * quarter / 4;
        assert!(wait_until(window, || enabled.elapsed() >= at));
        let start = enabled.elapsed();
        let first = 1000 + bursts.len() * BURST;
        let got = answers(&proxy, first..first + BURST);
        // The ramp is linear: the burst's middle is its point of the window.
        let f = ((start + enabled.elapsed()) / 2).as_secs_f64() / window.as_secs_f64();
        bursts.push((first, f, got));
    }
    // The sessions pinned before b was enabled never moved.
    assert!(answers(&proxy, 0..300).iter().all(|e| e == "a"));

    // A second instance with b usable all along says which of these
    // sessions b takes at its full share (instances agree on hashed picks).
    let (reference, _ra, _rb) = config(true);
    let reference = reference.start();
    for (first, f, got) in bursts {
        let full = answers(&reference, first..first + BURST);
        let on_b = full.iter().filter(|e| *e == "b").count();
        let admitted = got
            .iter()
            .zip(&full)
            .filter(|(g, f)| *g == "b" && *f == "b")
            .count();
        assert!(
            got.iter().zip(&full).all(|(g, f)| g == "a" || f == "b"),
            "b only takes sessions of its own share"
        );
        let share = admitted as f64 / on_b as f64;
        println!(
            "slow start {WINDOW_S} s, at {f:.3} of the window: b admitted {admitted} of its {on_b} new sessions = {share:.3}"
        );
        assert!((share - f).abs() <= 0.06, "at {f:.3}: admitted {share:.3}");
    }
}
