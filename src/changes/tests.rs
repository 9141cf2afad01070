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
    let mut on_disk: Records =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        !on_disk.load_balancers["*"].contains_key("session_affinity_attributes.drain_duration"),
        "the dropped record is gone from the file: {on_disk:?}"
    );
    assert_eq!(on_disk.version, 2, "without objects, the file is version 2");
    on_disk.version = records::VERSION;
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

// --- Objects put and deleted at run time -------------------------------

const OBJECTS_FILE: &str = "tether:
  listeners: [{address: '127.0.0.1:8080'}]
  monitors:
    m: {type: http, path: /health}
  pools:
    p:
      monitor: m
      endpoints: [{name: a, address: '127.0.0.1:9001'}, {name: b, address: '127.0.0.1:9002'}]
  load_balancers:
    '*': {default_pools: [p]}
";

fn objects_file(state_file: Option<&std::path::Path>) -> Config {
    let mut c = crate::config::load_str(OBJECTS_FILE).unwrap().tether;
    c.state_file = state_file.map(std::path::Path::to_path_buf);
    c
}

fn put(kind: ObjectKind, name: &str, value: Json) -> Change {
    Change::PutObject {
        kind,
        name: name.into(),
        value,
    }
}

fn delete(kind: ObjectKind, name: &str) -> Change {
    Change::DeleteObject {
        kind,
        name: name.into(),
    }
}

fn new_objects() -> Vec<Change> {
    vec![
        put(ObjectKind::Monitor, "m2", json!({"type": "tcp"})),
        put(
            ObjectKind::Pool,
            "q",
            json!({"monitor": "m2", "endpoints": [{"name": "c", "address": "127.0.0.1:9003", "weight": 0.5}]}),
        ),
        put(
            ObjectKind::LoadBalancer,
            "A.Example",
            json!({"default_pools": ["q"], "fallback_pool": "p"}),
        ),
    ]
}

#[test]
fn objects_put_at_run_time_take_effect_at_once_with_ids_and_origins() {
    let c = objects_file(None);
    let changes = owner(&c).with_config_path(std::path::Path::new("/etc/tether.yaml"));
    let said = changes.apply("test", &new_objects(), NOW).unwrap();
    assert_eq!(said.len(), 3, "{said:?}");
    let state = changes.state();
    let q = state.find_endpoint("q", "c").unwrap();
    assert_eq!(state.endpoint(q).weight(), 0.5);
    assert!(state.load_balancers().named("a.example").is_some());

    let pools = changes.objects(ObjectKind::Pool);
    assert_eq!(
        pools
            .iter()
            .map(|o| (o.name.as_str(), o.origin))
            .collect::<Vec<_>>(),
        vec![("p", Origin::File), ("q", Origin::Runtime)]
    );
    assert_eq!(
        pools[0].file.as_deref(),
        Some(std::path::Path::new("/etc/tether.yaml"))
    );
    assert_eq!(pools[1].file, None);
    assert_eq!(pools[1].id, object_id(ObjectKind::Pool, "q"));
    assert_eq!(pools[1].created_on_unix_ms, Some(NOW.unix_secs * 1000));
    assert_eq!(pools[0].created_on_unix_ms, None);
    assert_eq!(pools[1].value["endpoints"][0]["weight"], json!(0.5));
    let lb = changes
        .object_by_id(
            ObjectKind::LoadBalancer,
            &object_id(ObjectKind::LoadBalancer, "a.example"),
        )
        .unwrap();
    assert_eq!(lb.value["fallback_pool"], json!("p"));
    assert!(changes.object(ObjectKind::Monitor, "m2").is_some());

    // The same put again: no change, the same state.
    let before = changes.state();
    let said = changes.apply("test", &new_objects(), NOW).unwrap();
    assert!(said.is_empty(), "{said:?}");
    assert!(Arc::ptr_eq(&before, &changes.state()));
}

#[test]
fn deletes_are_refused_for_file_objects_referenced_ones_and_unknown_ones() {
    let c = objects_file(None);
    let changes = owner(&c).with_config_path(std::path::Path::new("/etc/tether.yaml"));
    changes.apply("test", &new_objects(), NOW).unwrap();
    let e = changes
        .apply("test", &[delete(ObjectKind::Pool, "p")], NOW)
        .unwrap_err();
    assert!(matches!(e, ChangeError::FileDefined { .. }), "{e:?}");
    assert!(e.to_string().contains("/etc/tether.yaml"), "{e}");
    let e = changes
        .apply("test", &[delete(ObjectKind::Pool, "q")], NOW)
        .unwrap_err();
    assert!(matches!(e, ChangeError::InUse { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(r#"tether.load_balancers["a.example"].default_pools[0]"#),
        "{e}"
    );
    let e = changes
        .apply("test", &[delete(ObjectKind::Monitor, "m2")], NOW)
        .unwrap_err();
    assert!(e.to_string().contains("tether.pools.q.monitor"), "{e}");
    let e = changes
        .apply("test", &[delete(ObjectKind::Pool, "nope")], NOW)
        .unwrap_err();
    assert!(matches!(e, ChangeError::NoSuchObject { .. }), "{e:?}");
    // From a peer, deleting what is not here is nothing to do.
    assert!(changes
        .apply_from_cluster(&[delete(ObjectKind::Pool, "nope")], NOW)
        .is_ok());
    // In order, all three go.
    let said = changes
        .apply(
            "test",
            &[
                delete(ObjectKind::LoadBalancer, "a.example"),
                delete(ObjectKind::Pool, "q"),
                delete(ObjectKind::Monitor, "m2"),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(changes.state().find_endpoint("q", "c").is_err());
    assert!(changes.records().is_empty(), "{:?}", changes.records());
}

#[test]
fn a_peers_delete_of_an_object_this_file_defines_is_nothing_to_do() {
    // A peer deleted its run-time pool p; this replica's file defines a p.
    // The delete stays in Redis and comes back at every resync: no refusal.
    let c = objects_file(None);
    let changes = owner(&c);
    let before = changes.state();
    let said = changes
        .apply_from_cluster(&[delete(ObjectKind::Pool, "p")], NOW)
        .unwrap();
    assert!(said.is_empty(), "{said:?}");
    assert!(Arc::ptr_eq(&before, &changes.state()));
    assert!(changes.state().find_endpoint("p", "a").is_ok());
    // In a batch with other changes, those still apply.
    let said = changes
        .apply_from_cluster(
            &[
                delete(ObjectKind::Monitor, "m"),
                put(ObjectKind::Monitor, "m2", json!({"type": "tcp"})),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(changes.object(ObjectKind::Monitor, "m").is_some());
    // From this replica's own admin API it is still refused.
    let e = changes
        .apply("test", &[delete(ObjectKind::Pool, "p")], NOW)
        .unwrap_err();
    assert!(matches!(e, ChangeError::FileDefined { .. }), "{e:?}");
}

#[test]
fn with_a_cluster_an_object_too_large_to_share_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = objects_file(Some(&dir.path().join("state.json")));
    let changes = owner(&c);
    let sink = published(&changes);
    let endpoints: Vec<Json> = (0..40)
        .map(|i| json!({"name": format!("e{i}"), "address": format!("127.0.0.1:{}", 10_000 + i)}))
        .collect();
    let big = put(ObjectKind::Pool, "big", json!({"endpoints": endpoints}));
    let small = put(ObjectKind::Monitor, "m2", json!({"type": "tcp"}));
    let small_len = serde_json::to_string(&small).unwrap().len();
    changes.set_shared_limit(small_len + 200);
    let before = changes.state();
    let e = changes
        .apply("test", &[small.clone(), big.clone()], NOW)
        .unwrap_err();
    let ChangeError::TooLarge {
        kind,
        name,
        bytes,
        limit,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*kind, name.as_str(), *limit),
        (ObjectKind::Pool, "big", small_len + 200)
    );
    assert!(*bytes > *limit, "{bytes}");
    assert!(
        e.to_string()
            .contains(r#"pool "big" is too large to share"#),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("at most {limit}")), "{e}");
    assert!(Arc::ptr_eq(&before, &changes.state()), "nothing applied");
    assert!(changes.records().is_empty());
    assert!(!dir.path().join("state.json").exists(), "nothing written");
    assert!(sink.lock().is_empty(), "nothing published");
    // Within the limit: applied and published.
    changes.apply("test", &[small], NOW).unwrap();
    assert_eq!(sink.lock().len(), 1);
    // A peer's object came through the cluster, so it fitted: not checked.
    changes.apply_from_cluster(&[big], NOW).unwrap();
    assert!(changes.object(ObjectKind::Pool, "big").is_some());
}

#[test]
fn an_invalid_object_changes_nothing() {
    let c = objects_file(None);
    let changes = owner(&c);
    let before = changes.state();
    let e = changes
        .apply(
            "test",
            &[put(
                ObjectKind::Pool,
                "q",
                json!({"endpoints": [], "colour": 1}),
            )],
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, ChangeError::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("tether.pools.q"), "{e}");
    assert!(Arc::ptr_eq(&before, &changes.state()));
    assert!(changes.records().is_empty());
}

#[test]
fn objects_survive_a_restart_and_a_reload_and_file_objects_keep_their_changed_keys() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("state.json");
    let c = objects_file(Some(&path));
    let changes = owner(&c);
    changes.apply("test", &new_objects(), NOW).unwrap();
    // A file object replaced: one key changed, and a run-time weight of its own.
    let mut p = changes.object(ObjectKind::Pool, "p").unwrap().value;
    p["slow_start"] = json!(30);
    changes
        .apply("test", &[put(ObjectKind::Pool, "p", p)], NOW)
        .unwrap();
    changes
        .apply(
            "test",
            &[Change::SetEndpointWeight {
                pool: "q".into(),
                endpoint: "c".into(),
                weight: 0.25,
            }],
            NOW,
        )
        .unwrap();
    let written: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["version"], json!(3));
    assert_eq!(
        written["objects"]["pool"]["q"]["value"]["monitor"],
        json!("m2")
    );
    assert_eq!(
        written["objects"]["pool"]["p"]["fields"]["slow_start"],
        json!({"value": 30, "file": null})
    );

    // A restart.
    let again = owner(&c);
    again.restore(NOW);
    let state = again.state();
    let at = state.find_endpoint("q", "c").unwrap();
    assert_eq!(state.endpoint(at).weight(), 0.25, "its run-time weight too");
    assert_eq!(
        state.pools[state.find_endpoint("p", "a").unwrap().pool()]
            .conf
            .slow_start
            .as_secs(),
        30
    );
    assert!(state.load_balancers().named("a.example").is_some());
    assert_eq!(again.records(), changes.records());

    // A reload where the file now sets slow_start and defines q itself.
    let edited = OBJECTS_FILE
        .replace(
            "      monitor: m\n",
            "      monitor: m\n      slow_start: 10\n",
        )
        .replace(
            "  load_balancers:",
            "    q:\n      endpoints: [{name: d, address: '127.0.0.1:9004'}]\n  load_balancers:",
        );
    let mut edited = crate::config::load_str(&edited).unwrap().tether;
    edited.state_file = Some(path.clone());
    let said = again.reload(edited, CookieKeys::random(), NOW);
    assert!(
        said.iter()
            .any(|l| l.contains("pool q was created at run time")),
        "{said:#?}"
    );
    assert!(
        said.iter().any(|l| l.contains("pool p: slow_start")),
        "{said:#?}"
    );
    let state = again.state();
    assert!(state.find_endpoint("q", "d").is_ok(), "the file's q");
    assert!(state.find_endpoint("q", "c").is_err());
    assert!(
        state.load_balancers().named("a.example").is_some(),
        "still there"
    );
    let q = again.object(ObjectKind::Pool, "q").unwrap();
    assert_eq!(q.origin, Origin::File);
}

#[test]
fn old_state_files_still_read() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        r#"{"version": 2, "endpoints": {"p": {"a": {"weight": {"value": 0.5, "file": 1.0}}}}}"#,
    )
    .unwrap();
    let c = objects_file(Some(&path));
    let changes = owner(&c);
    changes.restore(NOW);
    let state = changes.state();
    assert_eq!(
        state
            .endpoint(state.find_endpoint("p", "a").unwrap())
            .weight(),
        0.5
    );
    let written: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        written["version"],
        json!(2),
        "without objects, still version 2"
    );
    changes
        .apply(
            "test",
            &[put(ObjectKind::Monitor, "m2", json!({"type": "tcp"}))],
            NOW,
        )
        .unwrap();
    let written: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["version"], json!(3), "with objects");
    changes
        .apply("test", &[delete(ObjectKind::Monitor, "m2")], NOW)
        .unwrap();
    let written: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["version"], json!(2), "{written}");
}

#[test]
fn object_changes_are_published_whole_and_in_the_snapshot() {
    let c = objects_file(None);
    let changes = owner(&c);
    let seen: Arc<parking_lot::Mutex<Vec<Change>>> = Arc::default();
    let sink = Arc::clone(&seen);
    changes.set_publisher(Box::new(move |batch| sink.lock().extend_from_slice(batch)));
    changes.apply("test", &new_objects(), NOW).unwrap();
    let published = seen.lock().clone();
    assert!(
        matches!(
            &published[0],
            Change::PutObject {
                kind: ObjectKind::Monitor,
                ..
            }
        ),
        "{published:?}"
    );
    assert!(published.iter().any(|c| matches!(c, Change::PutObject { kind: ObjectKind::LoadBalancer, name, .. } if name == "a.example")));
    let snapshot = changes.snapshot();
    assert_eq!(
        snapshot
            .iter()
            .filter(|c| matches!(c, Change::PutObject { .. }))
            .count(),
        3,
        "{snapshot:?}"
    );
    // A peer with the same file reaches the same objects from the snapshot.
    let peer = owner(&c);
    for change in &snapshot {
        peer.apply_from_cluster(std::slice::from_ref(change), NOW)
            .unwrap();
    }
    assert_eq!(peer.records().objects, changes.records().objects);
    seen.lock().clear();
    changes
        .apply(
            "test",
            &[delete(ObjectKind::LoadBalancer, "a.example")],
            NOW,
        )
        .unwrap();
    assert_eq!(
        seen.lock()[0],
        delete(ObjectKind::LoadBalancer, "a.example")
    );
}

#[test]
fn a_put_keeps_the_run_time_changes_of_what_it_does_not_change() {
    let c = objects_file(None);
    let changes = owner(&c);
    changes
        .apply(
            "test",
            &[
                Change::SetEndpointWeight {
                    pool: "p".into(),
                    endpoint: "a".into(),
                    weight: 0.5,
                },
                Change::SetEndpointEnabled {
                    pool: "p".into(),
                    endpoint: "b".into(),
                    enabled: false,
                    drain_started_unix_ms: None,
                },
            ],
            NOW,
        )
        .unwrap();
    // GET, edit one key, PUT: the values in force stay.
    let mut p = changes.object(ObjectKind::Pool, "p").unwrap().value;
    assert_eq!(p["endpoints"][0]["weight"], json!(0.5), "{p}");
    assert_eq!(p["endpoints"][1]["enabled"], json!(false), "{p}");
    p["minimum_origins"] = json!(1);
    p["slow_start"] = json!(20);
    let said = changes
        .apply("test", &[put(ObjectKind::Pool, "p", p.clone())], NOW)
        .unwrap();
    // The weight is now the object's value (its `endpoints` key), no
    // longer an endpoint record of its own.
    assert!(
        said.iter()
            .any(|l| l.contains("p endpoint a: weight: the object put changed it")),
        "{said:#?}"
    );
    assert!(changes.records().endpoint("p", "a").is_none());
    let state = changes.state();
    let at = |e: &str| state.endpoint(state.find_endpoint("p", e).unwrap());
    assert_eq!(at("a").weight(), 0.5);
    assert!(!at("b").enabled());
    assert!(at("b").disabled_since().is_some(), "still draining");
    // A put that sets the weight itself: the object's value is in force.
    p["endpoints"][0]["weight"] = json!(0.25);
    changes
        .apply("test", &[put(ObjectKind::Pool, "p", p)], NOW)
        .unwrap();
    let state = changes.state();
    assert_eq!(
        state
            .endpoint(state.find_endpoint("p", "a").unwrap())
            .weight(),
        0.25
    );
}
