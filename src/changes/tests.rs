//! The owner of changes: batches, durability, and restoring over an edited file.

use super::*;
use crate::affinity::cookie::CookieKeys;
use crate::clock::MONOTONIC_BASE;
use crate::config::{self, OriginSteering, SessionAffinity};
use crate::state::fixtures::{config, pool};
use serde_json::{json, Value as Json};

const NOW: Now = Now {
    ms: MONOTONIC_BASE + 60_000,
    unix_secs: 1_700_000_000,
};

fn cfg(state_file: Option<&std::path::Path>) -> Config {
    let mut c = config(vec![pool("p", 3, OriginSteering::Random)], &["p"], None);
    c.state_file = state_file.map(std::path::Path::to_path_buf);
    c
}

fn owner(c: &Config) -> Changes {
    Changes::new(Live::new(State::new(c, CookieKeys::random())), c.clone())
}

fn disable(endpoint: &str) -> Change {
    Change::SetEndpointEnabled {
        pool: "p".into(),
        endpoint: endpoint.into(),
        enabled: false,
        drain_started_unix_ms: None,
    }
}

fn weight(endpoint: &str, weight: f64) -> Change {
    Change::SetEndpointWeight {
        pool: "p".into(),
        endpoint: endpoint.into(),
        weight,
    }
}

fn patch(fields: Json) -> Change {
    let Json::Object(fields) = fields else {
        panic!("fields must be an object")
    };
    Change::PatchLoadBalancer {
        load_balancer: "*".into(),
        fields: LbPatch::from_json(&fields).expect("a patch that reads"),
    }
}

fn lb(changes: &Changes) -> config::LoadBalancer {
    changes
        .state()
        .load_balancers()
        .named("*")
        .unwrap()
        .conf
        .clone()
}

#[test]
fn a_batch_applies_in_order_and_says_what_changed() {
    let c = owner(&cfg(None));
    let said = c
        .apply(
            "test",
            &[disable("p-0"), weight("p-1", 0.5), weight("p-1", 0.5)],
            NOW,
        )
        .unwrap();
    assert_eq!(
        said,
        [
            "pool p endpoint p-0: enabled true -> false",
            "pool p endpoint p-1: weight 1 -> 0.5"
        ]
    );
    let at = c.state().find_endpoint("p", "p-0").unwrap();
    assert!(!c.state().endpoint(at).enabled());
    assert_eq!(c.state().endpoint(at).disabled_since(), Some(NOW.ms));
    assert_eq!(
        c.apply("test", &[weight("p-1", 0.5)], NOW).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn an_invalid_change_in_a_batch_applies_nothing() {
    let c = owner(&cfg(None));
    let e = c
        .apply("test", &[disable("p-0"), weight("nope", 0.5)], NOW)
        .unwrap_err();
    assert_eq!(
        e,
        ChangeError::NotFound(NotFound::Endpoint {
            pool: "p".into(),
            endpoint: "nope".into()
        })
    );
    let at = c.state().find_endpoint("p", "p-0").unwrap();
    assert!(
        c.state().endpoint(at).enabled(),
        "the first change was not applied"
    );
    assert!(c.records().is_empty());
    let e = c.apply("test", &[weight("p-0", 1.5)], NOW).unwrap_err();
    assert_eq!(
        e,
        ChangeError::Invalid(vec!["weight: must be between 0 and 1, got 1.5".into()])
    );
}

#[test]
fn load_balancer_patches_are_validated_as_the_file_is_and_recorded_per_field() {
    let c = owner(&cfg(None));
    // Keys a run-time change may not set do not read as a patch.
    let Json::Object(fields) = json!({"adaptive_routing": {}, "bogus": 1, "name": "x"}) else {
        unreachable!()
    };
    assert_eq!(
        LbPatch::from_json(&fields).unwrap_err().0,
        [
            "adaptive_routing: cannot be changed at run time",
            "bogus: unknown field",
            "name: cannot be changed at run time",
        ]
    );
    let e = c
        .apply(
            "test",
            &[patch(
                json!({"session_affinity": "cookie", "session_affinity_ttl": 10}),
            )],
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        e,
        ChangeError::Invalid(vec![
            "session_affinity_ttl: must be between 1800 and 604800 for session_affinity cookie, got 10".into()
        ])
    );

    c.apply(
        "test",
        &[patch(json!({
            "session_affinity": "cookie",
            "session_affinity_attributes": {"drain_duration": 30}
        }))],
        NOW,
    )
    .unwrap();
    let now = lb(&c);
    assert_eq!(now.session_affinity, SessionAffinity::Cookie);
    assert_eq!(
        now.session_affinity_ttl.as_secs(),
        82_800,
        "the new type's default TTL"
    );
    assert_eq!(now.session_affinity_attributes.drain_duration.as_secs(), 30);
    let records = c.records();
    let fields: Vec<&String> = records.load_balancers["*"].keys().collect();
    assert_eq!(
        fields,
        [
            "session_affinity",
            "session_affinity_attributes.drain_duration",
            "session_affinity_ttl"
        ],
        "only the fields the change set, never a whole copy"
    );
    assert_eq!(
        records.load_balancers["*"]["session_affinity_ttl"].file,
        json!(0)
    );
}

#[test]
fn session_persistence_off_when_already_off_is_refused() {
    let c = owner(&cfg(None));
    let off = Change::SetSessionPersistence {
        load_balancer: "*".into(),
        persistence: Persistence::Off,
    };
    assert_eq!(
        c.apply("test", std::slice::from_ref(&off), NOW)
            .unwrap_err(),
        ChangeError::AlreadyOff {
            load_balancer: "*".into()
        }
    );
    let on = Change::SetSessionPersistence {
        load_balancer: "*".into(),
        persistence: Persistence::SourceIp,
    };
    c.apply("test", &[on], NOW).unwrap();
    assert_eq!(lb(&c).session_affinity, SessionAffinity::SourceIp);
    c.apply("test", &[off], NOW).unwrap();
    assert_eq!(lb(&c).session_affinity, SessionAffinity::None);
    assert!(
        c.records().is_empty(),
        "back to the file's values: no record"
    );
}

#[test]
fn a_change_that_cannot_be_written_is_refused_and_changes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let c = owner(&cfg(Some(&gone.join("state.json"))));
    std::fs::remove_dir(&gone).unwrap();
    let e = c
        .apply(
            "test",
            &[disable("p-0"), patch(json!({"enabled": false}))],
            NOW,
        )
        .unwrap_err();
    assert!(
        matches!(&e, ChangeError::NotDurable(why) if why.contains("cannot write the state file")),
        "{e:?}"
    );
    let at = c.state().find_endpoint("p", "p-0").unwrap();
    assert!(c.state().endpoint(at).enabled());
    assert!(lb(&c).enabled);
    assert!(c.records().is_empty());
}

#[test]
fn changes_survive_a_restart_and_drains_keep_their_start() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("state.json");
    let first = owner(&cfg(Some(&file)));
    let thirty_s_ago = Now {
        ms: NOW.ms - 30_000,
        unix_secs: NOW.unix_secs - 30,
    };
    first
        .apply("test", &[disable("p-1")], thirty_s_ago)
        .unwrap();
    first
        .apply(
            "test",
            &[
                weight("p-2", 0.25),
                patch(json!({"session_affinity": "source_ip"})),
            ],
            NOW,
        )
        .unwrap();

    // A new process from the same file; its clocks started later.
    let second = owner(&cfg(Some(&file)));
    let later = Now {
        ms: MONOTONIC_BASE + 1_000,
        unix_secs: NOW.unix_secs + 10,
    };
    second.restore(later);
    let s = second.state();
    let p1 = s.endpoint(s.find_endpoint("p", "p-1").unwrap());
    assert!(!p1.enabled());
    assert_eq!(
        later.ms - p1.disabled_since().unwrap(),
        40_000,
        "disabled 40 s ago"
    );
    assert_eq!(
        s.endpoint(s.find_endpoint("p", "p-2").unwrap()).weight(),
        0.25
    );
    assert_eq!(lb(&second).session_affinity, SessionAffinity::SourceIp);
    assert_eq!(second.records(), first.records());
}

#[test]
fn a_file_edit_after_a_patch_wins_for_that_field_and_keeps_the_others() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("state.json");
    let first = owner(&cfg(Some(&file)));
    first
        .apply(
            "test",
            &[
                patch(json!({"session_affinity": "cookie", "session_affinity_attributes": {"drain_duration": 30}})),
                weight("p-0", 0.5),
            ],
            NOW,
        )
        .unwrap();

    // The operator edits the TTL and the drain duration in the file.
    let mut edited = cfg(Some(&file));
    let file_lb = edited.load_balancers.get_mut("*").unwrap();
    file_lb.session_affinity_attributes.drain_duration = std::time::Duration::from_secs(5);
    let second = owner(&edited);
    second.restore(NOW);
    let now = lb(&second);
    assert_eq!(
        now.session_affinity_attributes.drain_duration.as_secs(),
        5,
        "the file wins"
    );
    assert_eq!(
        now.session_affinity,
        SessionAffinity::Cookie,
        "the other patch stays"
    );
    assert_eq!(now.session_affinity_ttl.as_secs(), 82_800);
    let s = second.state();
    assert_eq!(
        s.endpoint(s.find_endpoint("p", "p-0").unwrap()).weight(),
        0.5
    );
    let on_disk: Records = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        !on_disk.load_balancers["*"].contains_key("session_affinity_attributes.drain_duration"),
        "the dropped record is gone from the file: {on_disk:?}"
    );
    assert_eq!(on_disk, second.records());
}

#[test]
fn a_broken_state_file_is_reported_and_the_configuration_used() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("state.json");
    std::fs::write(&file, "{ not json").unwrap();
    let c = owner(&cfg(Some(&file)));
    c.restore(NOW);
    assert!(c.records().is_empty());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{ not json",
        "left for the operator to look at until the next change"
    );
}

#[test]
fn a_drain_the_file_started_keeps_its_start_across_restarts() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("state.json");
    let mut c = cfg(Some(&file));
    c.pools.get_mut("p").unwrap().endpoints[0].enabled = false;
    owner(&c).restore(NOW);
    let later = Now {
        ms: MONOTONIC_BASE + 1_000,
        unix_secs: NOW.unix_secs + 20,
    };
    let second = owner(&c);
    second.restore(later);
    let s = second.state();
    let p0 = s.endpoint(s.find_endpoint("p", "p-0").unwrap());
    assert!(!p0.enabled());
    assert_eq!(
        later.ms - p0.disabled_since().unwrap(),
        20_000,
        "the drain began at the first start, 20 s ago"
    );
}

/// Collects what the publisher is handed.
fn published(c: &Changes) -> Arc<parking_lot::Mutex<Vec<Vec<Change>>>> {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    c.set_publisher(Box::new(move |batch: &[Change]| {
        sink.lock().push(batch.to_vec())
    }));
    seen
}

#[test]
fn local_changes_are_published_normalised_and_cluster_changes_are_not() {
    let c = owner(&cfg(None));
    let seen = published(&c);
    // The real clock: the drain's start is published on the wall clock.
    let c_now = c.state().clock.now();
    c.apply(
        "admin",
        &[
            disable("p-0"),
            weight("p-1", 0.5),
            patch(json!({"session_affinity": "cookie"})),
        ],
        c_now,
    )
    .unwrap();
    let batches = seen.lock().clone();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert!(matches!(
        &batch[0],
        Change::SetEndpointEnabled { endpoint, enabled: false, drain_started_unix_ms: Some(_), .. }
            if endpoint == "p-0"
    ));
    assert_eq!(batch[1], weight("p-1", 0.5));
    let Change::PatchLoadBalancer { fields, .. } = &batch[2] else {
        panic!("{:?}", batch[2])
    };
    // Every run-time key, so order of arrival does not matter.
    assert_eq!(fields.session_affinity, Some(SessionAffinity::Cookie));
    assert_eq!(
        fields.session_affinity_ttl,
        Some(patch::Seconds::new(82800))
    );
    assert_eq!(fields.fallback_pool, Some(None));

    // A peer applies them: the same settings, and nothing is published again.
    let peer = owner(&cfg(None));
    let peer_seen = published(&peer);
    let real_now = peer.state().clock.now();
    peer.apply_from_cluster(batch, real_now).unwrap();
    assert!(peer_seen.lock().is_empty(), "no loop");
    assert_eq!(lb(&peer), lb(&c));
    let at = peer.state().find_endpoint("p", "p-1").unwrap();
    assert_eq!(peer.state().endpoint(at).weight(), 0.5);
    assert_eq!(peer.snapshot().len(), 3, "{:?}", peer.snapshot());
    // Applying the same again changes nothing.
    assert_eq!(
        peer.apply_from_cluster(batch, real_now).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_peers_drain_keeps_its_start() {
    let c = owner(&cfg(None));
    let clock = c.state().clock;
    let started = crate::clock::unix_ms() - 20_000;
    let change = Change::SetEndpointEnabled {
        pool: "p".into(),
        endpoint: "p-2".into(),
        enabled: false,
        drain_started_unix_ms: Some(started),
    };
    c.apply_from_cluster(std::slice::from_ref(&change), clock.now())
        .unwrap();
    let at = c.state().find_endpoint("p", "p-2").unwrap();
    let since = c.state().endpoint(at).disabled_since().unwrap();
    let ago = clock.now_ms() - since;
    assert!(
        (19_990..=20_100).contains(&ago),
        "drain started {ago} ms ago"
    );
    let record = c.records();
    assert_eq!(
        record.endpoint("p", "p-2").unwrap().disabled_at_unix_ms,
        Some(started)
    );
    // Published back by the owner of a local change, the start is the same.
    let Some(Change::SetEndpointEnabled {
        drain_started_unix_ms: Some(again),
        ..
    }) = c.snapshot().into_iter().find(
        |change| matches!(change, Change::SetEndpointEnabled { endpoint, .. } if endpoint == "p-2"),
    )
    else {
        panic!("p-2's disable is in force")
    };
    assert!(again.abs_diff(started) <= 2, "{again} vs {started}");
}

#[test]
fn a_peers_values_are_range_checked_as_an_admin_change_is() {
    let c = owner(&cfg(None));
    let now_ms = NOW.unix_secs * 1000;
    let drain_from = |t: u64| Change::SetEndpointEnabled {
        pool: "p".into(),
        endpoint: "p-0".into(),
        enabled: false,
        drain_started_unix_ms: Some(t),
    };
    // A drain that would never end (its start at u64::MAX), or one more than
    // a minute ahead of this replica's clock: refused, nothing applied.
    for t in [u64::MAX, now_ms + plan::MAX_DRAIN_START_AHEAD_MS + 1] {
        let err = c.apply_from_cluster(&[drain_from(t)], NOW).unwrap_err();
        assert!(
            matches!(&err, ChangeError::Invalid(p) if p[0].starts_with("drain_started_unix_ms: must not be more than 60 s in the future")),
            "{err:?}"
        );
    }
    let at = c.state().find_endpoint("p", "p-0").unwrap();
    assert!(c.state().endpoint(at).enabled());
    // Within a minute of clock skew: accepted.
    c.apply_from_cluster(&[drain_from(now_ms + 30_000)], NOW)
        .unwrap();
    assert!(!c.state().endpoint(at).enabled());
    // Weights and load balancer fields: the admin API's own checks.
    for bad in [
        weight("p-1", 2.0),
        weight("p-1", -0.5),
        weight("p-1", f64::NAN),
    ] {
        assert!(matches!(
            c.apply_from_cluster(&[bad], NOW),
            Err(ChangeError::Invalid(_))
        ));
    }
    assert!(matches!(
        c.apply_from_cluster(&[patch(json!({"session_affinity_ttl": -1}))], NOW),
        Err(ChangeError::Invalid(_))
    ));
    // A key a run-time change may not set does not even read.
    let Json::Object(rules) = json!({"rules": []}) else {
        unreachable!()
    };
    assert!(LbPatch::from_json(&rules).is_err());
}

#[test]
fn a_reload_publishes_the_fields_whose_record_gave_way_to_the_file() {
    let c = owner(&cfg(None));
    let published: Arc<parking_lot::Mutex<Vec<Vec<Change>>>> = Arc::default();
    let sink = Arc::clone(&published);
    c.set_publisher(Box::new(move |batch| sink.lock().push(batch.to_vec())));
    c.apply("test", &[weight("p-0", 0.5), weight("p-1", 0.25)], NOW)
        .unwrap();
    published.lock().clear();

    // The file now sets p-0's weight itself; p-1's run-time weight stays.
    let mut edited = cfg(None);
    edited.pools.get_mut("p").unwrap().endpoints[0].weight = 0.75;
    let said = c.reload(edited, CookieKeys::random(), NOW);
    assert_eq!(said.len(), 1, "{said:?}");
    let s = c.state();
    assert_eq!(
        s.endpoint(s.find_endpoint("p", "p-0").unwrap()).weight(),
        0.75
    );
    assert_eq!(
        s.endpoint(s.find_endpoint("p", "p-1").unwrap()).weight(),
        0.25
    );
    assert_eq!(
        *published.lock(),
        vec![vec![Change::SetEndpointWeight {
            pool: "p".into(),
            endpoint: "p-0".into(),
            weight: 0.75
        }]],
        "the cluster follows the file's edit"
    );
}

#[test]
fn a_typed_patch_merges_attributes_key_by_key_and_null_clears_the_fallback_pool() {
    let c = config(
        vec![
            pool("p", 3, OriginSteering::Random),
            pool("q", 1, OriginSteering::Random),
        ],
        &["p"],
        Some("q"),
    );
    let c = owner(&c);
    c.apply(
        "test",
        &[patch(json!({"session_affinity": "cookie", "session_affinity_attributes": {"samesite": "Strict"}}))],
        NOW,
    )
    .unwrap();
    c.apply(
        "test",
        &[patch(
            json!({"session_affinity_attributes": {"drain_duration": 30}}),
        )],
        NOW,
    )
    .unwrap();
    let attrs = lb(&c).session_affinity_attributes;
    assert_eq!(attrs.samesite, config::SameSite::Strict, "kept");
    assert_eq!(attrs.drain_duration.as_secs(), 30);
    assert_eq!(lb(&c).fallback_pool.as_deref(), Some("q"));

    c.apply("test", &[patch(json!({"fallback_pool": null}))], NOW)
        .unwrap();
    assert_eq!(lb(&c).fallback_pool, None);
    assert_eq!(
        c.records().load_balancers["*"]["fallback_pool"].value,
        Json::Null
    );
}

#[test]
fn the_untyped_patch_of_earlier_versions_reads_as_the_typed_one() {
    // What a replica of an earlier version published for a load balancer:
    // every run-time key as the file spells it, `fallback_pool` null.
    let mut file = cfg(None);
    file.load_balancers
        .get_mut("*")
        .unwrap()
        .session_affinity_attributes
        .headers = vec!["X-User".into()];
    let lb = file.load_balancers["*"].clone();
    let json = records::lb_json(&lb);
    let fields: serde_json::Map<String, Json> = config::runtime_keys()
        .map(|key| (key.to_string(), records::field(&json, key)))
        .collect();
    let old = json!({"change": "patch_load_balancer", "load_balancer": "*", "fields": fields});
    let read: Change = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(read, plan::lb_change(&lb));
    // And it is written the same way.
    assert_eq!(serde_json::to_value(&read).unwrap(), old);
}

/// The setters of run-time changes are disallowed outside `changes`
/// (clippy.toml); an `allow` elsewhere would quietly reopen them. Only the
/// clock, the owner of changes, the state itself and its successor on a
/// reload (`live`) may say it.
#[test]
fn only_the_owners_of_disallowed_methods_allow_them() {
    const MAY: &[&str] = &["src/clock", "src/changes/", "src/state/"];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    let mut offenders = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if !rel.ends_with(".rs") || MAY.iter().any(|m| rel.starts_with(m)) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains(concat!("clippy::", "disallowed_methods")) {
                offenders.push(rel);
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}
