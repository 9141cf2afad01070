//! Load shedding (Cloudflare's `load_shedding` on a pool) through the real
//! binary: hashed shedding moves the configured share of new sessions to the
//! next pool, and two instances shed exactly the same sessions.

mod support;

use support::*;

/// The pool (by its upstream's name) that served each of `n` header sessions.
fn pools_of_sessions(proxy: &TetherProc, n: usize) -> Vec<String> {
    let client = client();
    (0..n)
        .map(|i| {
            let user = format!("user-{i}");
            let (status, _, body) = get_h(
                &client,
                &proxy.url("/"),
                &[("host", "shed.test"), ("x-user", &user)],
            );
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect()
}

#[test]
fn hashed_shedding_moves_its_share_and_instances_agree() {
    let primary = Upstream::healthy("primary-1");
    let secondary = Upstream::healthy("secondary-1");
    let config = tether()
        .load_balancer(
            "shed.test",
            lb(["primary", "secondary"])
                .affinity(Affinity::Header)
                .headers(["X-User"]),
        )
        .pool(
            "primary",
            pool([&primary]).load_shedding(LoadShedding {
                default_percent: Some(25.0),
                default_policy: Some("hash".into()),
                ..LoadShedding::default()
            }),
        )
        .pool("secondary", pool([&secondary]));
    let one = config.clone().listener(free_port()).start();
    let two = config.listener(free_port()).start();

    let n = 2000;
    let a = pools_of_sessions(&one, n);
    let b = pools_of_sessions(&two, n);
    assert_eq!(a, b, "both instances shed the same sessions");
    let shed = a.iter().filter(|p| *p == "secondary-1").count();
    let share = shed as f64 / n as f64 * 100.0;
    println!("load shedding 25% (hash), {n} sessions, 2 instances: {share:.2}% shed, identical");
    assert!((share - 25.0).abs() <= 3.0, "{share:.2}% shed");
    // Pinned: every session stays where it went.
    assert_eq!(pools_of_sessions(&one, n), a);
}
