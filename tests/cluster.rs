//! Several replicas, one load balancer (`tether.cluster`, docs/replicas.md):
//! a real `redis-server` on a free loopback port and three Tether processes.
//! Each scenario returns its figures so that the `#[ignore]`d
//! `measure_replicas` (run by scripts/replicas.sh) prints them with and
//! without `cluster`; the tests assert the promises with it.
// Propagation delays are measured in real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::tether::cluster::key::ClusterKey;
use ::tether::cluster::wire::seal;
use support::api::{cluster_view, endpoint_view, ok, patch, wait_for_health, wait_for_link};
use support::cflb::{keys_file, mint, mint_v1, unix_now};
use support::redis::Redis;
use support::*;

const KEY: &[u8] = b"cluster test key, 32 bytes long.";
const VERDICT: Duration = Duration::from_secs(10);
const LINK: Duration = Duration::from_secs(10);

/// Three replicas of one configuration (each its own listener and admin
/// port), in a cluster on `redis` when given.
struct Replicas {
    procs: Vec<TetherProc>,
    confs: Vec<Tether>,
    /// The cluster's name (its Redis keys are `tether:<name>:...`).
    name: String,
    _dir: tempfile::TempDir,
}

fn replicas(balancer: LoadBalancer, ups: &[&Upstream], redis: Option<&Redis>) -> Replicas {
    let dir = tempfile::TempDir::new().unwrap();
    let keys = keys_file(dir.path(), "keys", &[KEY]);
    let cluster_key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    // Each scenario its own cluster: one Redis may serve several.
    static CLUSTERS: AtomicU64 = AtomicU64::new(0);
    let name = format!("test{}", CLUSTERS.fetch_add(1, Ordering::Relaxed));
    let confs: Vec<Tether> = (0..3)
        .map(|_| {
            let conf = tether()
                .listener(free_port())
                .admin(free_port())
                .decision_header()
                .cookie_keys_file(&keys)
                .load_balancer("*", balancer.clone())
                .pool("p", pool(ups.iter().copied()).monitor("fast"))
                .monitor("fast", Monitor::every(0.2));
            match redis {
                Some(r) => conf.cluster(&r.url(), &name, &cluster_key),
                None => conf,
            }
        })
        .collect();
    let procs: Vec<TetherProc> = confs.iter().map(Tether::start).collect();
    if redis.is_some() {
        for p in &procs {
            wait_for_link(p, true, 0, LINK);
        }
    }
    Replicas {
        procs,
        confs,
        name,
        _dir: dir,
    }
}

/// GET / on `proxy` as user `user` (header affinity on `x-user`), with an
/// optional `__cflb`: (status, endpoint, decision).
fn visit(
    client: &reqwest::blocking::Client,
    proxy: &TetherProc,
    user: &str,
    cookie: Option<&str>,
) -> (u16, String, String) {
    let cookie = cookie.map(|c| format!("__cflb={c}"));
    let mut headers = vec![("host", "x"), ("x-user", user)];
    if let Some(c) = cookie.as_deref() {
        headers.push(("cookie", c));
    }
    let (status, h, body) = get_h(client, &proxy.url("/"), &headers);
    if status != 200 {
        return (status, body, String::new());
    }
    let (decision, endpoint) = decision_of(&h);
    (status, endpoint, decision)
}

fn four() -> Vec<Upstream> {
    ["a", "b", "c", "d"]
        .into_iter()
        .map(Upstream::healthy)
        .collect()
}

fn header_lb() -> LoadBalancer {
    lb(["p"])
        .affinity(Affinity::Header)
        .headers(["x-user"])
        .zero_downtime_failover(Failover::Sticky)
}

/// Figures of the header-session scenario.
#[derive(Debug)]
struct HeaderFigures {
    sessions: usize,
    /// Sessions of `a`, re-pinned during its outage.
    repinned: usize,
    /// Sessions served by different endpoints depending on the replica,
    /// after the failure and recovery.
    split: usize,
    /// Re-pinned sessions a restarted replica still sends where the others do.
    kept_after_restart: usize,
}

/// 300 header sessions over three replicas; endpoint `a` refuses
/// connections while each session makes one request (to one replica), then
/// comes back; every session then asks every replica. Then replica 2 is
/// restarted and asked again.
fn header_sessions(redis: Option<&Redis>) -> HeaderFigures {
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let mut r = replicas(header_lb(), &refs, redis);
    let client = client();
    let users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    let mut repinned = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let (status, endpoint, _) = visit(&client, &r.procs[i % 3], u, None);
        assert_eq!(status, 200);
        if endpoint == "a" {
            repinned.push(i);
        }
    }
    // `a` refuses connections: its sessions fail over (sticky) or, once the
    // monitor says so, are re-pinned; each session asks one other replica.
    ups[0].stop();
    for (i, u) in users.iter().enumerate() {
        let (status, endpoint, _) = visit(&client, &r.procs[(i + 1) % 3], u, None);
        assert_eq!(status, 200, "{u}: {endpoint}");
        assert_ne!(endpoint, "a");
    }
    ups[0].restart();
    for p in &r.procs {
        wait_for_health(p, "p", "a", true, VERDICT);
    }
    std::thread::sleep(Duration::from_millis(300));
    let ask_all = |r: &Replicas, i: usize| -> Vec<String> {
        r.procs
            .iter()
            .map(|p| visit(&client, p, &users[i], None).1)
            .collect()
    };
    let mut split = 0;
    let mut where_now = HashMap::new();
    for i in 0..users.len() {
        let seen = ask_all(&r, i);
        if seen.iter().any(|e| *e != seen[0]) {
            split += 1;
        }
        where_now.insert(i, seen[0].clone());
    }
    // Restart replica 2 (a new process, an empty session table).
    r.procs[2].kill();
    let restarted_at = unix_now() * 1000;
    r.procs[2] = r.confs[2].start();
    if redis.is_some() {
        wait_for_link(&r.procs[2], true, restarted_at.saturating_sub(1000), LINK);
    }
    let kept = repinned
        .iter()
        .filter(|&&i| visit(&client, &r.procs[2], &users[i], None).1 == where_now[&i])
        .count();
    HeaderFigures {
        sessions: users.len(),
        repinned: repinned.len(),
        split,
        kept_after_restart: kept,
    }
}

/// A drain sent to replica 0: how long until every replica has it (`None`:
/// not within 3 s), and the spread of the drains' time left.
fn drain_propagation(redis: Option<&Redis>) -> (Option<Duration>, u64) {
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(lb(["p"]).affinity(Affinity::Cookie).drain(60), &refs, redis);
    let sent = Instant::now();
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/b",
        r#"{"enabled": false}"#,
    ));
    let everywhere = wait_until(Duration::from_secs(3), || {
        r.procs
            .iter()
            .all(|p| endpoint_view(p, "p", "b")["enabled"] == false)
    });
    let took = everywhere.then(|| sent.elapsed());
    let left: Vec<u64> = r
        .procs
        .iter()
        .filter_map(|p| endpoint_view(p, "p", "b")["draining"][0]["seconds_left"].as_u64())
        .collect();
    let spread = left.iter().max().unwrap_or(&0) - left.iter().min().unwrap_or(&0);
    (took, spread)
}

/// Figures of the dead endpoint's cookie sessions.
#[derive(Debug)]
struct SpreadFigures {
    sessions: usize,
    /// New endpoint → sessions (as replica 0 chose).
    counts: HashMap<String, usize>,
    /// Sessions for which all three replicas chose the same new endpoint.
    agreed: usize,
}

impl SpreadFigures {
    /// The busiest survivor's load over its share (3 survivors, equal weights).
    fn worst_over_share(&self) -> f64 {
        let share = self.sessions as f64 / 3.0;
        self.counts.values().copied().max().unwrap_or(0) as f64 / share
    }
}

/// 240 cookie sessions pinned to `a`; `a` dies; each stale cookie is sent to
/// every replica. `v1`: cookies without a nonce, minted in one second (what
/// every session of an endpoint carried before the nonce).
fn cookie_spread(redis: Option<&Redis>, v1: bool) -> SpreadFigures {
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(lb(["p"]).affinity(Affinity::Cookie), &refs, redis);
    let expires = unix_now() + 3600;
    let cookies: Vec<String> = (0..240)
        .map(|_| {
            if v1 {
                mint_v1(KEY, "*", "p", "a", expires)
            } else {
                mint(KEY, "*", "p", "a", expires)
            }
        })
        .collect();
    ups[0].stop();
    for p in &r.procs {
        wait_for_health(p, "p", "a", false, VERDICT);
    }
    let client = client();
    let mut counts = HashMap::new();
    let mut agreed = 0;
    for c in &cookies {
        let seen: Vec<(u16, String, String)> = r
            .procs
            .iter()
            .map(|p| visit(&client, p, "-", Some(c)))
            .collect();
        for (status, endpoint, decision) in &seen {
            assert_eq!(
                (*status, decision.as_str()),
                (200, "repin_unhealthy"),
                "{endpoint}"
            );
        }
        if seen.iter().all(|s| s.1 == seen[0].1) {
            agreed += 1;
        }
        *counts.entry(seen[0].1.clone()).or_insert(0) += 1;
    }
    SpreadFigures {
        sessions: cookies.len(),
        counts,
        agreed,
    }
}

/// Requests under load while Redis is killed, a change is made, and Redis
/// comes back: (requests, failed, seconds until the change made during the
/// outage was in force on replica 1 after Redis returned).
fn redis_outage(redis: &mut Redis) -> (u64, u64, f64) {
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(header_lb(), &refs, Some(redis));
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let urls: Vec<String> = r.procs.iter().map(|p| p.url("/")).collect();
    let load: Vec<_> = (0..2)
        .map(|t| {
            let (stop, sent, failed, urls) = (
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&failed),
                urls.clone(),
            );
            std::thread::spawn(move || {
                let client = client();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("user-{}", i % 500);
                    let (status, _, _) =
                        get_h(&client, &urls[i % 3], &[("host", "x"), ("x-user", &user)]);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 2;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    for p in &r.procs {
        wait_for_link(p, false, 0, LINK);
        let (_, metrics) = support::api::get(p, "/metrics");
        let text = metrics.as_str().unwrap_or_default().to_string();
        assert!(
            text.lines()
                .any(|l| l.starts_with("tether_cluster_connected{") && l.ends_with("} 0")),
            "{text}"
        );
    }
    // A change while Redis is away: in force locally at once.
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/d",
        r#"{"weight": 0.5}"#,
    ));
    std::thread::sleep(Duration::from_millis(1000));
    let back = unix_now() * 1000;
    redis.restart();
    let returned = Instant::now();
    for p in &r.procs {
        wait_for_link(p, true, back.saturating_sub(1000), LINK);
    }
    assert!(
        wait_until(Duration::from_secs(5), || endpoint_view(
            &r.procs[1],
            "p",
            "d"
        )["weight"]
            == 0.5),
        "the change made while Redis was away reached replica 1 after it returned"
    );
    let propagated = returned.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    (
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        propagated,
    )
}

#[test]
fn a_drain_through_one_replica_is_in_force_on_all_within_a_second() {
    let redis = Redis::start();
    let (took, spread) = drain_propagation(Some(&redis));
    let took = took.expect("the drain reached every replica");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    assert!(
        spread <= 1,
        "the drains end together: time left differs by {spread} s"
    );
}

#[test]
fn header_sessions_do_not_split_after_failover_and_recovery_nor_on_restart() {
    let redis = Redis::start();
    let f = header_sessions(Some(&redis));
    println!("{f:?}");
    assert!(
        f.repinned >= 30,
        "a quarter of the sessions were on a: {f:?}"
    );
    assert_eq!(f.split, 0, "{f:?}");
    assert!(
        f.kept_after_restart * 100 >= f.repinned * 99,
        "the restarted replica kept the re-pinned sessions: {f:?}"
    );
}

#[test]
fn redis_killed_under_load_fails_no_request_and_resyncs() {
    let mut redis = Redis::start();
    let (sent, failed, propagated) = redis_outage(&mut redis);
    println!("{sent} requests, {failed} failed, change propagated {propagated:.2} s after Redis returned");
    assert!(sent > 100, "{sent}");
    assert_eq!(failed, 0);
}

#[test]
fn a_dead_endpoints_cookie_sessions_spread_and_every_replica_agrees() {
    let redis = Redis::start();
    let f = cookie_spread(Some(&redis), false);
    println!("{f:?}");
    assert_eq!(f.agreed, f.sessions, "{f:?}");
    assert_eq!(f.counts.len(), 3, "spread over the three survivors: {f:?}");
    assert!(f.worst_over_share() <= 1.5, "{f:?}");
}

#[test]
fn the_cluster_view_lists_every_replica() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(header_lb(), &refs, Some(&redis));
    assert!(wait_until(Duration::from_secs(5), || {
        cluster_view(&r.procs[0])["replicas"]
            .as_array()
            .map_or(0, Vec::len)
            == 3
    }));
    let view = cluster_view(&r.procs[1]);
    assert_eq!(view["connected"], true, "{view}");
    assert!(view["last_sync_unix_ms"].as_u64().unwrap() > 0, "{view}");
    // Without a cluster there is none to show.
    let alone = tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer("*", lb(["p"]))
        .pool("p", pool(refs.iter().copied()))
        .start();
    let (status, _) = support::api::get(&alone, "/v1/cluster");
    assert_eq!(status, 404);
}

/// A sample of `proxy`'s `/metrics`: the first series line starting with
/// `series` (name and labels up to where the test cares) that contains
/// `label` (0 when absent).
fn metric(proxy: &TetherProc, series: &str, label: &str) -> f64 {
    let (_, metrics) = support::api::get(proxy, "/metrics");
    let text = metrics.as_str().unwrap_or_default().to_string();
    text.lines()
        .find(|l| l.starts_with(series) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `tether_cluster_rejected_total{reason}` on `proxy`.
fn rejected(proxy: &TetherProc, reason: &str) -> u64 {
    metric(
        proxy,
        "tether_cluster_rejected_total{",
        &format!("reason=\"{reason}\""),
    ) as u64
}

/// `VmRSS` of `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A key that is not the cluster's: what a forger who knows the format but
/// not the secret signs with.
fn wrong_key() -> ClusterKey {
    ClusterKey::from_file_bytes(b"not the cluster's key, 32 bytes!").unwrap()
}

/// In forged values: never to be seen in a log.
const MARK: &str = "FORGED-7f3a";

#[test]
fn a_forged_event_is_dropped_and_counted_while_a_signed_change_applies() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(header_lb(), &refs, Some(&redis));
    let mut con = redis.connection();
    let channel = format!("tether:{}:events", r.name);
    // What disabled every endpoint before: a hand-written change, unsigned.
    let unsigned = format!(
        r#"{{"from":"{MARK}","changes":[{{"change":"set_endpoint_enabled","pool":"p","endpoint":"b","enabled":false,"drain_started_unix_ms":18446744073709551615}}]}}"#
    );
    // The same in the sealed form, with a key that is not the cluster's.
    let forged = seal(&wrong_key(), &r.name, &channel, "", &unsigned);
    // 20 MB of garbage.
    let garbage = MARK.repeat(20 * 1024 * 1024 / MARK.len());
    for msg in [&unsigned, &forged, &garbage] {
        let receivers: i64 = ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(msg.as_str())
            .query(&mut con)
            .unwrap();
        assert_eq!(receivers, 3);
    }
    for p in &r.procs {
        assert!(
            wait_until(Duration::from_secs(5), || rejected(p, "bad_mac") == 1
                && rejected(p, "malformed") == 1
                && rejected(p, "too_large") == 1),
            "{}",
            p.logs()
        );
        assert_eq!(endpoint_view(p, "p", "b")["enabled"], true);
        let logs = p.logs();
        assert!(
            !logs.contains(MARK),
            "a dropped value's content is never logged"
        );
        assert!(
            logs.contains("dropped an event of 20971520 bytes (too_large)")
                || logs.contains(&format!(
                    "dropped an event of {} bytes (too_large)",
                    garbage.len()
                )),
            "{logs}"
        );
        assert!(
            logs.contains(&format!(
                "dropped an event of {} bytes (bad_mac)",
                forged.len()
            )),
            "{logs}"
        );
        assert_eq!(cluster_view(p)["connected"], true);
    }
    // Signed with the cluster's own key (a replica's bug, or a stolen key)
    // but out of range: a drain that would never end, a weight of 2.
    let at = unix_now() * 1000;
    let authentic = [
        format!(
            r#"{{"from":"r","at_unix_ms":{at},"changes":[{{"change":"set_endpoint_enabled","pool":"p","endpoint":"b","enabled":false,"drain_started_unix_ms":18446744073709551615}}]}}"#
        ),
        format!(
            r#"{{"from":"r","at_unix_ms":{at},"changes":[{{"change":"set_endpoint_weight","pool":"p","endpoint":"a","weight":2.0}}]}}"#
        ),
    ];
    let own_key = ClusterKey::from_file_bytes(CLUSTER_KEY).unwrap();
    for json in &authentic {
        let msg = seal(&own_key, &r.name, &channel, "", json);
        ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(msg)
            .query::<i64>(&mut con)
            .unwrap();
    }
    for p in &r.procs {
        assert!(
            wait_until(Duration::from_secs(5), || rejected(p, "out_of_range") == 2),
            "{}",
            p.logs()
        );
        assert_eq!(endpoint_view(p, "p", "b")["enabled"], true);
        assert_eq!(endpoint_view(p, "p", "a")["weight"], 1.0);
    }
    // A change made through one replica's admin API is signed: in force on all.
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/c",
        r#"{"enabled": false}"#,
    ));
    assert!(wait_until(Duration::from_secs(2), || r
        .procs
        .iter()
        .all(|p| endpoint_view(p, "p", "c")["enabled"] == false)));
    for p in &r.procs {
        assert_eq!(endpoint_view(p, "p", "b")["enabled"], true);
        assert_eq!(rejected(p, "bad_mac"), 1, "signed events are never dropped");
    }
}

#[test]
fn a_recorded_event_published_again_is_dropped_as_stale() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let r = replicas(header_lb(), &refs, Some(&redis));
    let channel = format!("tether:{}:events", r.name);
    // The forger listens on the channel and records a real disable of b.
    let mut listener = redis.connection();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut pubsub = listener.as_pubsub();
    pubsub.subscribe(&channel).unwrap();
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/b",
        r#"{"enabled": false}"#,
    ));
    let recorded: Vec<u8> = pubsub.get_message().unwrap().get_payload_bytes().to_vec();
    drop(pubsub);
    // The operator enables b again.
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/b",
        r#"{"enabled": true}"#,
    ));
    assert!(wait_until(Duration::from_secs(2), || r
        .procs
        .iter()
        .all(|p| endpoint_view(p, "p", "b")["enabled"] == true)));
    // The recorded disable, published again: authentic, but received before.
    let mut con = redis.connection();
    ::redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(&recorded)
        .query::<i64>(&mut con)
        .unwrap();
    // An authentic event written five minutes ago: too old.
    let old = format!(
        r#"{{"from":"r","at_unix_ms":{},"changes":[{{"change":"set_endpoint_enabled","pool":"p","endpoint":"c","enabled":false}}]}}"#,
        unix_now() * 1000 - 300_000
    );
    let own_key = ClusterKey::from_file_bytes(CLUSTER_KEY).unwrap();
    ::redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(seal(&own_key, &r.name, &channel, "", &old))
        .query::<i64>(&mut con)
        .unwrap();
    for p in &r.procs {
        assert!(
            wait_until(Duration::from_secs(5), || rejected(p, "stale") == 2),
            "{}",
            p.logs()
        );
        assert_eq!(endpoint_view(p, "p", "b")["enabled"], true);
        assert_eq!(endpoint_view(p, "p", "c")["enabled"], true);
    }
}

#[test]
fn forged_stored_changes_and_pins_are_ignored_at_resync() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let mut r = replicas(header_lb(), &refs, Some(&redis));
    // A signed change first: it must still apply beside the forgeries.
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/d",
        r#"{"weight": 0.5}"#,
    ));
    assert!(wait_until(Duration::from_secs(2), || endpoint_view(
        &r.procs[2],
        "p",
        "d"
    )["weight"]
        == 0.5));
    let mut con = redis.connection();
    let hash = format!("tether:{}:changes", r.name);
    let hset = |con: &mut ::redis::Connection, field: &str, value: &[u8]| {
        ::redis::cmd("HSET")
            .arg(&hash)
            .arg(field)
            .arg(value)
            .query::<i64>(con)
            .unwrap();
    };
    // Unsigned, as before: disable b.
    let disable_b =
        r#"{"change":"set_endpoint_enabled","pool":"p","endpoint":"b","enabled":false}"#;
    hset(&mut con, "endpoint_enabled:p/b", disable_b.as_bytes());
    // Signed with a wrong key: a's weight 0.
    let weight_a = r#"{"change":"set_endpoint_weight","pool":"p","endpoint":"a","weight":0.0}"#;
    let forged = seal(
        &wrong_key(),
        &r.name,
        &hash,
        "endpoint_weight:p/a",
        weight_a,
    );
    hset(&mut con, "endpoint_weight:p/a", forged.as_bytes());
    // d's valid, signed value replayed under c's field.
    let legit: Vec<u8> = ::redis::cmd("HGET")
        .arg(&hash)
        .arg("endpoint_weight:p/d")
        .query(&mut con)
        .unwrap();
    hset(&mut con, "endpoint_weight:p/c", &legit);
    // 200 KiB of junk.
    hset(
        &mut con,
        MARK,
        MARK.repeat(200 * 1024 / MARK.len()).as_bytes(),
    );
    // 1,000 forged pins (half signed with a wrong key, half unsigned).
    let mut pipe = ::redis::pipe();
    for i in 0..1000u64 {
        let key = format!("tether:{}:pin:{:016x}", r.name, i + 1);
        let json = format!(
            r#"{{"key":"{:016x}","pool":"p","endpoint":"b","ttl_ms":600000}}"#,
            i + 1
        );
        let value = if i % 2 == 0 {
            seal(&wrong_key(), &r.name, &key, "", &json)
        } else {
            json
        };
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(600_000)
            .ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    // Replica 2 restarts and resyncs from Redis.
    r.procs[2].kill();
    let restarted_at = unix_now() * 1000;
    r.procs[2] = r.confs[2].start();
    wait_for_link(&r.procs[2], true, restarted_at.saturating_sub(1000), LINK);
    let p = &r.procs[2];
    assert_eq!(endpoint_view(p, "p", "b")["enabled"], true);
    assert_eq!(endpoint_view(p, "p", "a")["weight"], 1.0);
    assert_eq!(endpoint_view(p, "p", "c")["weight"], 1.0);
    assert_eq!(
        endpoint_view(p, "p", "d")["weight"],
        0.5,
        "the signed change applies"
    );
    assert_eq!(rejected(p, "bad_mac"), 2 + 500, "{}", p.logs());
    assert_eq!(rejected(p, "malformed"), 1 + 500);
    assert_eq!(rejected(p, "too_large"), 1);
    assert_eq!(
        metric(p, "tether_sessions ", ""),
        0.0,
        "no forged pin in the session table"
    );
    assert_eq!(cluster_view(p)["pins_received"], 0);
    assert_eq!(cluster_view(p)["rejected"]["bad_mac"], 502);
    assert!(!p.logs().contains(MARK));
}

#[test]
fn a_changes_hash_past_its_bounds_is_not_read() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let mut r = replicas(header_lb(), &refs, Some(&redis));
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/d",
        r#"{"weight": 0.5}"#,
    ));
    let mut con = redis.connection();
    let hash = format!("tether:{}:changes", r.name);
    let restart = |r: &mut Replicas| {
        r.procs[2].kill();
        let restarted_at = unix_now() * 1000;
        r.procs[2] = r.confs[2].start();
        wait_for_link(&r.procs[2], true, restarted_at.saturating_sub(1000), LINK);
    };
    // 64 MiB of junk in one field: past 16 MiB, the hash is not read at
    // all, so the replica that resyncs is no larger than one that did not.
    ::redis::cmd("HSET")
        .arg(&hash)
        .arg("junk")
        .arg(vec![b'x'; 64 * 1024 * 1024])
        .query::<i64>(&mut con)
        .unwrap();
    restart(&mut r);
    let p = &r.procs[2];
    assert_eq!(rejected(p, "too_large"), 1, "{}", p.logs());
    let (resynced, other) = (vm_rss_kib(p.pid()), vm_rss_kib(r.procs[1].pid()));
    println!("VmRSS after a resync past 64 MiB of junk: {resynced} KiB (a replica that did not resync: {other} KiB)");
    assert!(
        resynced < other + 16 * 1024,
        "{resynced} KiB vs {other} KiB"
    );
    assert!(
        p.logs()
            .contains("dropped the changes hash (2 fields, not read) of "),
        "{}",
        p.logs()
    );
    assert_eq!(endpoint_view(p, "p", "d")["weight"], 1.0, "its own state");
    assert_eq!(cluster_view(p)["connected"], true);
    // 10,001 small fields: past the field bound.
    ::redis::cmd("HDEL")
        .arg(&hash)
        .arg("junk")
        .query::<i64>(&mut con)
        .unwrap();
    let mut pipe = ::redis::pipe();
    for i in 0..10_000 {
        pipe.hset(&hash, format!("junk{i}"), "x").ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    restart(&mut r);
    let p = &r.procs[2];
    assert_eq!(rejected(p, "too_large"), 1, "{}", p.logs());
    assert_eq!(endpoint_view(p, "p", "d")["weight"], 1.0);
    // Back within bounds: read, the junk dropped one by one, the change applied.
    ::redis::cmd("DEL")
        .arg(&hash)
        .query::<i64>(&mut con)
        .unwrap();
    ok(patch(
        &r.procs[0],
        "/v1/pools/p/endpoints/d",
        r#"{"weight": 0.25}"#,
    ));
    ::redis::cmd("HSET")
        .arg(&hash)
        .arg("junk")
        .arg("x")
        .query::<i64>(&mut con)
        .unwrap();
    restart(&mut r);
    let p = &r.procs[2];
    assert_eq!(endpoint_view(p, "p", "d")["weight"], 0.25);
    assert_eq!(rejected(p, "malformed"), 1);
    assert_eq!(rejected(p, "too_large"), 0);
    // Not a hash at all: counted, and the replica still connects (restart
    // waits for it).
    ::redis::cmd("DEL")
        .arg(&hash)
        .query::<i64>(&mut con)
        .unwrap();
    ::redis::cmd("SET")
        .arg(&hash)
        .arg(MARK)
        .query::<()>(&mut con)
        .unwrap();
    restart(&mut r);
    assert_eq!(rejected(&r.procs[2], "malformed"), 1);
    assert!(!r.procs[2].logs().contains(MARK));
}

#[test]
fn after_a_key_rotation_stored_changes_are_signed_again_from_the_replicas_state() {
    let redis = Redis::start();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let dir = tempfile::TempDir::new().unwrap();
    let old_key = cluster_key_file(dir.path(), "old.key", CLUSTER_KEY);
    let new_key = cluster_key_file(dir.path(), "new.key", b"the new cluster key, 32 bytes.!!");
    let conf = |key: &str, state: Option<&str>| {
        let c = tether()
            .listener(free_port())
            .admin(free_port())
            .load_balancer("*", header_lb())
            .pool("p", pool(refs.iter().copied()))
            .cluster(&redis.url(), "rotate", key);
        match state {
            Some(name) => c.state_file(&dir.path().join(name)),
            None => c,
        }
    };
    // Two replicas with state files, under the old key: b disabled.
    let mut old: Vec<TetherProc> = ["a.state", "b.state"]
        .iter()
        .map(|s| conf(&old_key, Some(s)).start())
        .collect();
    for p in &old {
        wait_for_link(p, true, 0, LINK);
    }
    ok(patch(
        &old[0],
        "/v1/pools/p/endpoints/b",
        r#"{"enabled": false}"#,
    ));
    assert!(wait_until(Duration::from_secs(2), || endpoint_view(
        &old[1], "p", "b"
    )["enabled"]
        == false));
    // All restarted with the new key: each restores b from its state file
    // and signs again the stored value that no longer verifies.
    for p in &mut old {
        p.kill();
    }
    let new: Vec<TetherProc> = ["a.state", "b.state"]
        .iter()
        .map(|s| conf(&new_key, Some(s)).start())
        .collect();
    for p in &new {
        wait_for_link(p, true, 0, LINK);
        assert_eq!(endpoint_view(p, "p", "b")["enabled"], false);
    }
    // A replica without a state file, under the new key: the stored change
    // verifies again, so it drains b too.
    let fresh = conf(&new_key, None).start();
    wait_for_link(&fresh, true, 0, LINK);
    assert_eq!(
        endpoint_view(&fresh, "p", "b")["enabled"],
        false,
        "{}",
        fresh.logs()
    );
    assert_eq!(rejected(&fresh, "bad_mac"), 0);
    assert!(
        new.iter().any(|p| p.logs().contains(
            "stored change(s) that did not verify replaced by this replica's own, signed"
        )),
        "{}",
        new[0].logs()
    );
}

#[test]
fn tether_t_checks_the_cluster_key_and_tls_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let good = cluster_key_file(dir.path(), "good.key", CLUSTER_KEY);
    let short = cluster_key_file(dir.path(), "short.key", b"  too short  \n");
    let not_pem = cluster_key_file(dir.path(), "ca.pem", b"not a certificate");
    let conf = |url: &str, key: &str| {
        tether()
            .listener(free_port())
            .load_balancer("*", header_lb())
            .pool("p", pool([&Upstream::refusing("a")]))
            .cluster(url, "t", key)
    };
    let (code, out, _) = conf("redis://127.0.0.1:1/0", &good).check();
    assert_eq!((code, out.trim()), (0, "configuration OK"));
    let (code, _, err) = conf("redis://127.0.0.1:1/0", &short).check();
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("tether.cluster.key_file: \"{short}\" holds 9 byte(s) of secret after trimming whitespace; a cluster key needs at least 32")),
        "{err}"
    );
    let (code, _, err) = conf("rediss://127.0.0.1:1/0", &good)
        .cluster_ca_file(&not_pem)
        .check();
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "tether.cluster.ca_file: \"{not_pem}\" holds no PEM certificate"
        )),
        "{err}"
    );
    let (code, _, err) = conf("redis://127.0.0.1:1/0", &good)
        .cluster_ca_file(&not_pem)
        .check();
    assert_eq!(code, 1);
    assert!(err.contains("tether.cluster.ca_file: verifies the Redis server's TLS certificate: it needs a rediss:// redis_url"), "{err}");
}

#[test]
fn replicas_over_rediss_share_a_change() {
    let redis = Redis::start_tls();
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let dir = tempfile::TempDir::new().unwrap();
    let key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    let conf = || {
        tether()
            .listener(free_port())
            .admin(free_port())
            .load_balancer("*", header_lb())
            .pool("p", pool(refs.iter().copied()))
            .cluster(&redis.url(), "tls", &key)
            .cluster_ca_file(&redis.ca_file())
    };
    assert!(redis.url().starts_with("rediss://"));
    let procs: Vec<TetherProc> = (0..2).map(|_| conf().start()).collect();
    for p in &procs {
        wait_for_link(p, true, 0, LINK);
    }
    ok(patch(
        &procs[0],
        "/v1/pools/p/endpoints/b",
        r#"{"enabled": false}"#,
    ));
    assert!(
        wait_until(Duration::from_secs(2), || endpoint_view(
            &procs[1], "p", "b"
        )["enabled"]
            == false),
        "{}",
        procs[1].logs()
    );
    // Without the CA (the system's roots do not know it): never connected,
    // and still serving.
    let mut no_ca = conf();
    if let Some(c) = no_ca.cluster.as_mut() {
        c.ca_file = None;
    }
    let alone = no_ca.start();
    assert!(
        alone.wait_for_log("Redis is unreachable", LINK),
        "{}",
        alone.logs()
    );
    assert_eq!(cluster_view(&alone)["connected"], false);
    let (status, _, _) = get_h(
        &client(),
        &alone.url("/"),
        &[("host", "x"), ("x-user", "u")],
    );
    assert_eq!(status, 200);
}

#[test]
fn an_acl_user_connects_and_a_wrong_password_is_refused_while_the_replica_serves() {
    let redis = Redis::start_with_acl("default-secret", "tether", "tether-secret");
    let ups = four();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let dir = tempfile::TempDir::new().unwrap();
    let key = cluster_key_file(dir.path(), "cluster.key", CLUSTER_KEY);
    let good_pw = dir.path().join("good.pw");
    std::fs::write(&good_pw, "tether-secret\n").unwrap();
    let bad_pw = dir.path().join("bad.pw");
    std::fs::write(&bad_pw, "not-the-secret\n").unwrap();
    let conf = |url: &str| {
        tether()
            .listener(free_port())
            .admin(free_port())
            .load_balancer("*", header_lb())
            .pool("p", pool(refs.iter().copied()))
            .cluster(url, "acl", &key)
    };
    // The ACL user with its password from password_file.
    let user = conf(&redis.url())
        .cluster_password(&good_pw.display().to_string(), Some("tether"))
        .start();
    wait_for_link(&user, true, 0, LINK);
    // The default user's password in the URL.
    let port = redis.addr().port();
    let in_url = conf(&format!("redis://:default-secret@127.0.0.1:{port}/0")).start();
    wait_for_link(&in_url, true, 0, LINK);
    ok(patch(
        &user,
        "/v1/pools/p/endpoints/b",
        r#"{"weight": 0.25}"#,
    ));
    assert!(wait_until(Duration::from_secs(2), || endpoint_view(
        &in_url, "p", "b"
    )["weight"]
        == 0.25));
    // A wrong password: refused, said so, and the replica keeps serving.
    let wrong = conf(&redis.url())
        .cluster_password(&bad_pw.display().to_string(), Some("tether"))
        .start();
    assert!(
        wrong.wait_for_log("Redis refused this replica's credentials", LINK),
        "{}",
        wrong.logs()
    );
    assert!(
        !wrong.logs().contains("not-the-secret"),
        "the password is never logged"
    );
    assert_eq!(cluster_view(&wrong)["connected"], false);
    assert_eq!(
        metric(&wrong, "tether_cluster_connected{", "cluster=\"acl\""),
        0.0
    );
    let client = client();
    for i in 0..20 {
        let user = format!("u{i}");
        let (status, _, _) = get_h(
            &client,
            &wrong.url("/"),
            &[("host", "x"), ("x-user", &user)],
        );
        assert_eq!(status, 200);
    }
}

/// `scripts/replicas.sh`: the figures of issue 9, with and without `cluster`.
#[test]
#[ignore]
fn measure_replicas() {
    let redis = Redis::start();
    for (label, r) in [("without cluster", None), ("with cluster", Some(&redis))] {
        let h = header_sessions(r);
        println!(
            "{label}: header sessions split after a failure and recovery: {} of {} ({:.1}%); re-pinned {}; a restarted replica kept {} of them ({:.1}%)",
            h.split,
            h.sessions,
            100.0 * h.split as f64 / h.sessions as f64,
            h.repinned,
            h.kept_after_restart,
            100.0 * h.kept_after_restart as f64 / h.repinned.max(1) as f64
        );
        let (took, spread) = drain_propagation(r);
        match took {
            Some(t) => println!("{label}: a drain sent to one replica in force on all three after {:.0} ms (time left differs by {spread} s)", t.as_secs_f64() * 1000.0),
            None => println!("{label}: a drain sent to one replica was not in force on the others within 3 s"),
        }
        let s = cookie_spread(r, false);
        println!(
            "{label}: a dead endpoint's 240 cookie sessions went to {:?}: busiest survivor {:.2}x its share; all three replicas chose alike for {} of {}",
            s.counts, s.worst_over_share(), s.agreed, s.sessions
        );
    }
    let s = cookie_spread(None, true);
    println!(
        "version 1 cookies (no nonce, minted in one second): {:?}, busiest survivor {:.2}x its share",
        s.counts,
        s.worst_over_share()
    );
    drop(redis);
    let mut redis = Redis::start();
    let (sent, failed, propagated) = redis_outage(&mut redis);
    println!("with cluster: Redis killed under load: {sent} requests, {failed} failed; a change made while it was away was in force everywhere {propagated:.2} s after it returned");
}
