//! Import then export of a realistic Cloudflare export round-trips every
//! field Tether honours; the rest is named.

use serde_json::{json, Value as Json};

use super::*;
use crate::cloudflare::{export, object_id};

const FIXTURE: &str = include_str!("../../../tests/cloudflare/export.json");

/// Loads the imported section through the configuration's own reader (a
/// listener added), as `tether -t` would.
fn load(imported: &Imported) -> config::Config {
    let yaml = to_yaml(imported).expect("yaml");
    let yaml = yaml.replacen(
        "tether:\n",
        "tether:\n  listeners:\n  - address: 127.0.0.1:0\n",
        1,
    );
    match config::load_str(&yaml) {
        Ok(loaded) => loaded.tether,
        Err(e) => panic!("the imported YAML does not load: {e:?}\n{yaml}"),
    }
}

/// Keeps the fields Tether honours, with every ID replaced by its object's name.
fn honoured(mut e: Json) -> Json {
    let mut names = std::collections::BTreeMap::new();
    for m in e["monitors"].as_array().into_iter().flatten() {
        let name = match m["description"].as_str() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => format!("monitor-{}", m["id"].as_str().unwrap_or("")),
        };
        names.insert(m["id"].as_str().unwrap_or("").to_string(), name);
    }
    for p in e["pools"].as_array().into_iter().flatten() {
        names.insert(
            p["id"].as_str().unwrap_or("").to_string(),
            p["name"].as_str().unwrap_or("").to_string(),
        );
    }
    let name = |v: &Json| {
        json!(names
            .get(v.as_str().unwrap_or(""))
            .cloned()
            .unwrap_or_default())
    };
    let drop = |o: &mut Json, keys: &[&str]| {
        if let Some(o) = o.as_object_mut() {
            for k in keys {
                o.remove(*k);
            }
        }
    };
    // Sorted by name, as an export is.
    let key = |v: &Json| match (v["name"].as_str(), v["id"].as_str()) {
        (Some(n), _) => n.to_string(),
        (None, Some(id)) => names.get(id).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    for list in ["monitors", "pools", "load_balancers"] {
        if let Some(a) = e[list].as_array_mut() {
            a.sort_by_key(key);
        }
    }
    for m in e["monitors"].as_array_mut().into_iter().flatten() {
        drop(
            m,
            &[
                "id",
                "created_on",
                "modified_on",
                "probe_zone",
                "description",
            ],
        );
    }
    for p in e["pools"].as_array_mut().into_iter().flatten() {
        p["monitor"] = name(&p["monitor"]);
        drop(
            p,
            &[
                "id",
                "created_on",
                "modified_on",
                "description",
                "check_regions",
                "latitude",
                "longitude",
                "notification_email",
                "notification_filter",
            ],
        );
        for o in p["origins"].as_array_mut().into_iter().flatten() {
            drop(o, &["virtual_network_id"]);
        }
    }
    for lb in e["load_balancers"].as_array_mut().into_iter().flatten() {
        lb["fallback_pool"] = name(&lb["fallback_pool"]);
        if let Some(pools) = lb["default_pools"].as_array_mut() {
            for p in pools.iter_mut() {
                *p = name(p);
            }
        }
        if let Some(w) = lb["random_steering"]["pool_weights"].as_object_mut() {
            *w = std::mem::take(w)
                .into_iter()
                .map(|(k, v)| (name(&json!(k)).as_str().unwrap_or("").to_string(), v))
                .collect();
        }
        for r in lb["rules"].as_array_mut().into_iter().flatten() {
            if let Some(pools) = r["overrides"]["default_pools"].as_array_mut() {
                for p in pools.iter_mut() {
                    *p = name(p);
                }
            }
        }
        drop(
            lb,
            &[
                "id",
                "created_on",
                "modified_on",
                "description",
                "ttl",
                "proxied",
                "region_pools",
                "country_pools",
                "pop_pools",
                "location_strategy",
            ],
        );
    }
    e
}

/// Every value in `want` is in `got` (numbers compared as numbers).
fn assert_within(want: &Json, got: &Json, path: &str) {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => {
            for (k, v) in w {
                let at = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => assert_within(v, gv, &at),
                    None => panic!("{at}: missing from the export (want {v})"),
                }
            }
        }
        (Json::Array(w), Json::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: lengths differ: {want} vs {got}");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_within(w, g, &format!("{path}[{i}]"));
            }
        }
        (Json::Number(w), Json::Number(g)) => {
            assert_eq!(w.as_f64(), g.as_f64(), "{path}")
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[test]
fn import_then_export_round_trips_every_honoured_field() {
    let fixture: types::Export = serde_json::from_str(FIXTURE).expect("fixture");
    let (imported, notes) = all(&fixture);
    assert!(notes.refused.is_empty(), "{:?}", notes.refused);
    let config = load(&imported);
    let exported = export::all(&config, &|k, n| object_id(k, n));
    let want = honoured(serde_json::from_str(FIXTURE).expect("fixture"));
    let got = honoured(serde_json::to_value(&exported).expect("json"));
    assert_within(&want, &got, "");
    // The fields dropped are named, each with its path.
    let dropped = notes.dropped.join("\n");
    for field in [
        "pools[0].check_regions",
        "pools[0].notification_email",
        "pools[0].notification_filter",
        "pools[0].description",
        "pools[0].origins[0].virtual_network_id",
        "monitors[0].probe_zone",
        "load_balancers[0].ttl",
        "load_balancers[0].location_strategy",
        "load_balancers[0].description",
    ] {
        assert!(dropped.contains(field), "{field} not named in:\n{dropped}");
    }
    // The monitor without a description is named after its ID.
    assert!(config
        .monitors
        .contains_key("monitor-0b6d3f4e7d2a4b8c9e1f2a3b4c5d6e7f"));
}

#[test]
fn export_then_import_gives_the_same_objects() {
    let fixture: types::Export = serde_json::from_str(FIXTURE).expect("fixture");
    let (imported, _) = all(&fixture);
    let config = load(&imported);
    let exported = export::all(&config, &|k, n| object_id(k, n));
    let (again, notes) = all(&exported);
    assert!(notes.refused.is_empty(), "{:?}", notes.refused);
    assert_eq!(load(&again), config);
}

fn lb_notes(lb: Json) -> Notes {
    let lb: types::LoadBalancer = serde_json::from_value(lb).expect("lb");
    let mut notes = Notes::default();
    let name_of = |_: ObjectKind, id: &str| (id == "p1").then(|| "one".to_string());
    load_balancer(&lb, "lb", &name_of, &mut notes);
    notes
}

#[test]
fn values_tether_cannot_honour_are_refused_naming_the_field() {
    for (lb, field) in [
        (
            json!({"name": "a", "steering_policy": "geo"}),
            "lb.steering_policy",
        ),
        (
            json!({"name": "a", "steering_policy": "proximity"}),
            "lb.steering_policy",
        ),
        (
            json!({"name": "a", "steering_policy": "", "region_pools": {"WNAM": ["p1"]}}),
            "lb.steering_policy",
        ),
        (
            json!({"name": "a", "country_pools": {"US": ["p1"]}}),
            "lb.steering_policy",
        ),
        (
            json!({"name": "a", "default_pools": ["nope"]}),
            "lb.default_pools[0]",
        ),
        (
            json!({"name": "a", "session_affinity": "magic"}),
            "lb.session_affinity",
        ),
        (
            json!({"name": "a", "pool_sets": [{"name": "x"}]}),
            "lb.pool_sets",
        ),
        (
            json!({"name": "a", "rules": [{"name": "r", "overrides": {"region_pools": {}}}]}),
            "lb.rules[0].overrides.region_pools",
        ),
    ] {
        let notes = lb_notes(lb.clone());
        assert!(
            notes.refused.iter().any(|r| r.starts_with(field)),
            "{lb}: {:?}",
            notes.refused
        );
    }
    let ok = lb_notes(json!({"name": "a", "default_pools": ["p1"], "proxied": false, "ttl": 30}));
    assert!(ok.refused.is_empty(), "{:?}", ok.refused);
    assert_eq!(ok.dropped.len(), 2, "{:?}", ok.dropped);
}

#[test]
fn monitors_tether_cannot_run_are_refused() {
    for (m, field) in [
        (json!({"type": "icmp_ping"}), "m.type"),
        (json!({"type": "smtp"}), "m.type"),
        (json!({"follow_redirects": true}), "m.follow_redirects"),
        (json!({"expected_codes": "abc"}), "m.expected_codes"),
    ] {
        let cf: types::Monitor = serde_json::from_value(m.clone()).expect("monitor");
        let mut notes = Notes::default();
        monitor(&cf, "x", "m", &mut notes);
        assert!(
            notes.refused.iter().any(|r| r.starts_with(field)),
            "{m}: {:?}",
            notes.refused
        );
    }
}
