//! Objects — monitors, pools, load balancers — created, replaced or deleted
//! at run time ([`super::Change::PutObject`], [`super::Change::DeleteObject`]).
//! Pure: the records the state file keeps of them, the effective
//! configuration they make with the file's ([`effective`]), their IDs, and
//! their rebase on an edited file.
//!
//! - A **run-time object** (a name the file does not define) is kept whole.
//! - A **file object** put at run time is kept as records of its top-level
//!   keys that differ from the file's, each with the file's value when it was
//!   set: a later file edit of that key wins (as for every run-time change).
//!   A file object cannot be deleted at run time.
//!
//! IDs are Cloudflare-shaped: the first 16 bytes of
//! SHA-256(`tether:<kind>:<name>`), 32 lower-case hex digits; the same for a
//! file and a run-time object of that name, stable across restarts, reloads
//! and replicas. Renaming is deleting and creating.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::records::{FieldRecord, Records};
pub use super::records::{ObjectKind, ObjectRecord, ObjectRecords};
use crate::config::objects::{entry_value, messages, with_entries, Entry};
use crate::config::Config;

/// The object's ID (defined with [`ObjectKind`] in `config::object_kind`).
pub use crate::config::object_kind::object_id;

/// Where an object comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The configuration file defines it (it may have run-time changes).
    File,
    /// Created at run time.
    Runtime,
}

/// One object as the admin APIs show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectView {
    pub kind: ObjectKind,
    /// [`object_id`].
    pub id: String,
    /// The key of its entry (a load balancer's host, lower-case).
    pub name: String,
    pub origin: Origin,
    /// The configuration file that defines it (file objects; `None` when the
    /// owner of changes was not told the path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Its entry of `tether:` as in force now (the YAML form as JSON, keys at
    /// their defaults left out; an endpoint's `enabled` and `weight` and a
    /// load balancer's run-time settings as changed at run time).
    pub value: Json,
    /// When it was created at run time (run-time objects) or first changed
    /// at run time (file objects), unix ms; `None`: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_on_unix_ms: Option<u64>,
    /// Its last run-time put, unix ms; `None`: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_on_unix_ms: Option<u64>,
}

/// The top-level key `key` of an entry (`null` when absent).
fn key_of(value: &Json, key: &str) -> Json {
    value.get(key).cloned().unwrap_or(Json::Null)
}

/// The keys of both entries, each once.
fn keys_of(a: &Json, b: &Json) -> Vec<String> {
    let mut keys: Vec<String> = [a, b]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Records `value` put on `kind` `name`: whole when the file (its entry
/// `file`) does not define it, else as the keys that differ from the
/// file's. Returns `false` when that changes nothing.
pub fn put(
    objects: &mut ObjectRecords,
    kind: ObjectKind,
    name: &str,
    value: Json,
    file: Option<&Json>,
    now_unix_ms: u64,
) -> bool {
    let of_kind = objects.entry(kind).or_default();
    let before = of_kind.get(name).cloned();
    let created = before
        .as_ref()
        .map_or(now_unix_ms, |r| r.created_on_unix_ms);
    let mut record = ObjectRecord {
        value: None,
        fields: BTreeMap::new(),
        created_on_unix_ms: created,
        modified_on_unix_ms: now_unix_ms,
    };
    match file {
        None => record.value = Some(value),
        Some(file) => {
            for key in keys_of(file, &value) {
                let (was, now) = (key_of(file, &key), key_of(&value, &key));
                if was != now {
                    record.fields.insert(
                        key,
                        FieldRecord {
                            value: now,
                            file: was,
                        },
                    );
                }
            }
        }
    }
    let same = before
        .as_ref()
        .is_some_and(|b| b.value == record.value && b.fields == record.fields)
        || (before.is_none() && record.value.is_none() && record.fields.is_empty());
    if same {
        cleanup(objects, kind);
        return false;
    }
    if record.value.is_none() && record.fields.is_empty() {
        objects.entry(kind).or_default().remove(name);
    } else {
        objects
            .entry(kind)
            .or_default()
            .insert(name.to_string(), record);
    }
    cleanup(objects, kind);
    true
}

/// Removes the record of `kind` `name`; `false` when there was none.
pub fn remove(objects: &mut ObjectRecords, kind: ObjectKind, name: &str) -> bool {
    let removed = objects
        .get_mut(&kind)
        .is_some_and(|of_kind| of_kind.remove(name).is_some());
    cleanup(objects, kind);
    removed
}

fn cleanup(objects: &mut ObjectRecords, kind: ObjectKind) {
    if objects.get(&kind).is_some_and(BTreeMap::is_empty) {
        objects.remove(&kind);
    }
}

/// The file's configuration `file` with the objects laid over, validated as
/// the file is. Errors: the reader's messages, with their key paths.
pub fn effective(file: &Config, objects: &ObjectRecords) -> Result<Config, Vec<String>> {
    if objects.is_empty() {
        return Ok(file.clone());
    }
    let values = values(file, objects);
    let entries: Vec<Entry<'_>> = values
        .iter()
        .map(|(kind, name, value)| Entry {
            section: kind.section(),
            name,
            value: Some(value),
        })
        .collect();
    with_entries(file, &entries).map_err(|e| messages(&e))
}

/// Each object's entry, in [`ObjectKind::ALL`] order.
fn values(file: &Config, objects: &ObjectRecords) -> Vec<(ObjectKind, String, Json)> {
    let mut out = Vec::new();
    for kind in ObjectKind::ALL {
        for (name, record) in objects.get(&kind).into_iter().flatten() {
            let file_value = entry_value(file, kind.section(), name);
            if let Some(value) = record.value_over(file_value.as_ref()) {
                out.push((kind, name.clone(), value));
            }
        }
    }
    out
}

/// The records that still apply over `file`, the file's configuration, and
/// the effective configuration they make: a run-time object whose name the
/// file now defines gives way to the file's; a file object's key the file
/// has changed since it was put gives way to the file's; a file object the
/// file no longer has loses its records; an object that no longer validates
/// with the others (in [`ObjectKind::ALL`] order) is dropped. Returns the
/// kept records, the effective configuration and one line per drop.
pub fn rebase(file: &Config, objects: &ObjectRecords) -> (ObjectRecords, Config, Vec<String>) {
    let mut kept = ObjectRecords::new();
    let mut said = Vec::new();
    for (&kind, of_kind) in objects {
        for (name, record) in of_kind {
            let noun = kind.noun();
            let file_value = entry_value(file, kind.section(), name);
            match (&record.value, &file_value) {
                (Some(_), None) => {
                    kept.entry(kind)
                        .or_default()
                        .insert(name.clone(), record.clone());
                }
                (Some(_), Some(_)) => said.push(format!(
                    "{noun} {name} was created at run time and the configuration file now defines it: the file wins, the run-time object is dropped"
                )),
                (None, None) => said.push(format!(
                    "{noun} {name} is no longer in the configuration file; its run-time changes are dropped"
                )),
                (None, Some(file_value)) => {
                    let mut r = record.clone();
                    r.fields.retain(|key, field| {
                        let now = key_of(file_value, key);
                        let keep = now == field.file;
                        if !keep {
                            said.push(format!(
                                "{noun} {name}: {key}: the configuration file changed it since it was put at run time; the file wins"
                            ));
                        }
                        keep
                    });
                    if !r.fields.is_empty() {
                        kept.entry(kind).or_default().insert(name.clone(), r);
                    }
                }
            }
        }
    }
    if let Ok(config) = effective(file, &kept) {
        return (kept, config, said);
    }
    // One by one, each kept only when it validates with those before it.
    let mut valid = ObjectRecords::new();
    let mut config = file.clone();
    for kind in ObjectKind::ALL {
        for (name, record) in kept.get(&kind).into_iter().flatten() {
            let mut with = valid.clone();
            with.entry(kind)
                .or_default()
                .insert(name.clone(), record.clone());
            match effective(file, &with) {
                Ok(c) => {
                    valid = with;
                    config = c;
                }
                Err(errors) => said.push(format!(
                    "{} {name}: its run-time value no longer validates ({}); it is dropped",
                    kind.noun(),
                    errors.join("; ")
                )),
            }
        }
    }
    (valid, config, said)
}

/// Every record of `records` rebased on `file`, the file's configuration,
/// as a start, a reload and `tether export` do: the objects first
/// ([`rebase`]), then the endpoints' and load balancers' records on the
/// configuration those make ([`Records::rebase`]). Returns the kept
/// records, the effective configuration (without the kept records of
/// fields laid over) and one line per drop.
pub fn rebase_all(file: &Config, records: &Records) -> (Records, Config, Vec<String>) {
    let (objects, effective, mut said) = rebase(file, &records.objects);
    let mut with_objects = records.clone();
    with_objects.objects = objects;
    let (kept, more) = with_objects.rebase(&effective);
    said.extend(more);
    (kept, effective, said)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use serde_json::json;

    pub(crate) use crate::config::objects::tests::FILE;

    fn file() -> Config {
        load_str(FILE).unwrap().tether
    }

    #[test]
    fn a_run_time_object_is_kept_whole_a_file_object_by_its_changed_keys() {
        let f = file();
        let mut objects = ObjectRecords::new();
        let q = json!({"endpoints": [{"name": "b", "address": "127.0.0.1:9002"}]});
        assert!(put(&mut objects, ObjectKind::Pool, "q", q.clone(), None, 5));
        assert!(!put(
            &mut objects,
            ObjectKind::Pool,
            "q",
            q.clone(),
            None,
            6
        ));
        let p_file = entry_value(&f, "pools", "p").unwrap();
        let mut p = p_file.clone();
        p["minimum_origins"] = json!(1);
        p["slow_start"] = json!(30);
        assert!(put(
            &mut objects,
            ObjectKind::Pool,
            "p",
            p.clone(),
            Some(&p_file),
            7
        ));
        let record = &objects[&ObjectKind::Pool]["p"];
        assert_eq!(record.value, None);
        assert_eq!(
            record.fields.keys().collect::<Vec<_>>(),
            vec!["minimum_origins", "slow_start"]
        );
        let c = effective(&f, &objects).unwrap();
        assert_eq!(c.pools["p"].slow_start.as_secs(), 30);
        assert_eq!(c.pools["q"].endpoints[0].name, "b");
        // Putting the file's value back removes the record.
        assert!(put(
            &mut objects,
            ObjectKind::Pool,
            "p",
            p_file.clone(),
            Some(&p_file),
            8
        ));
        assert!(!objects[&ObjectKind::Pool].contains_key("p"));
        assert!(remove(&mut objects, ObjectKind::Pool, "q"));
        assert!(objects.is_empty(), "{objects:?}");
    }

    #[test]
    fn a_file_edit_wins_over_a_run_time_object_of_the_same_name_or_key() {
        let f = file();
        let mut objects = ObjectRecords::new();
        let q = json!({"endpoints": [{"name": "b", "address": "127.0.0.1:9002"}]});
        put(&mut objects, ObjectKind::Pool, "q", q, None, 1);
        let p_file = entry_value(&f, "pools", "p").unwrap();
        let mut p = p_file.clone();
        p["slow_start"] = json!(30);
        p["minimum_origins"] = json!(1);
        put(&mut objects, ObjectKind::Pool, "p", p, Some(&p_file), 1);

        let (kept, c, said) = rebase(&f, &objects);
        assert_eq!(kept, objects);
        assert!(said.is_empty(), "{said:?}");
        assert_eq!(c.pools["p"].slow_start.as_secs(), 30);

        let edited = load_str(&FILE.replace(
            "      monitor: m\n",
            "      monitor: m\n      slow_start: 10\n",
        ))
        .unwrap()
        .tether;
        let edited = crate::config::objects::with_entries(
            &edited,
            &[Entry {
                section: "pools",
                name: "q",
                value: Some(&json!({"endpoints": [{"name": "c", "address": "127.0.0.1:9003"}]})),
            }],
        )
        .unwrap();
        let (kept, c, said) = rebase(&edited, &objects);
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(
            said[1].contains("pool q was created at run time"),
            "{said:?}"
        );
        assert!(said[0].contains("pool p: slow_start"), "{said:?}");
        assert_eq!(c.pools["q"].endpoints[0].name, "c", "the file's q");
        assert_eq!(c.pools["p"].slow_start.as_secs(), 10, "the file's edit");
        assert_eq!(c.pools["p"].minimum_origins, 1);
        assert_eq!(kept[&ObjectKind::Pool]["p"].fields.len(), 1);
    }

    #[test]
    fn objects_that_no_longer_validate_are_dropped_one_by_one() {
        let f = file();
        let mut objects = ObjectRecords::new();
        let m2 = json!({"type": "http"});
        put(&mut objects, ObjectKind::Monitor, "m2", m2, None, 1);
        let q = json!({"monitor": "m2", "endpoints": [{"name": "b", "address": "127.0.0.1:9002"}]});
        put(&mut objects, ObjectKind::Pool, "q", q, None, 1);
        // A record a newer reader would refuse: an unknown key.
        let r = json!({"endpoints": [{"name": "b", "address": "127.0.0.1:9002"}], "colour": 1});
        put(&mut objects, ObjectKind::Pool, "r", r, None, 1);
        let (kept, c, said) = rebase(&f, &objects);
        assert_eq!(said.len(), 1, "{said:#?}");
        assert!(said[0].starts_with("pool r:"), "{said:?}");
        assert!(said[0].contains("tether.pools.r.colour"), "{said:?}");
        assert!(c.pools.contains_key("q") && !c.pools.contains_key("r"));
        assert_eq!(kept[&ObjectKind::Pool].len(), 1);
    }
}
