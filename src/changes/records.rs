//! What the state file keeps: one record per field changed at run time, each
//! with the value it was set to and the configuration file's value it
//! replaced. Pure data and pure decisions, no I/O: [`super::state_file`]
//! reads and writes it, [`super::Changes`] keeps it in step with the state.
//!
//! At start (and after a reload) the records are [`Records::rebase`]d on the
//! file's configuration: a record whose field the file has changed since the
//! record was made is dropped, the file's edit wins, and the caller logs why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::config::{load_balancer_to_value, Config, ATTRIBUTES};

/// The state file's format version. Version 3 added `objects` (monitors,
/// pools and load balancers put at run time); a file without objects is
/// written as version 2 (what it is), and version 2 reads as version 3
/// without objects. Version 1 (whole load balancers) is still read: see
/// [`Records::from_v1`].
pub const VERSION: u32 = 3;

/// Defined with the ID rule in `config::object_kind` (Cloudflare's API imports it there too).
pub use crate::config::object_kind::ObjectKind;

/// What the state file keeps of one object put at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRecord {
    /// A run-time object: its whole entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// A file object: its top-level keys put with a value other than the
    /// file's (`null`: absent), each with the file's value when put.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldRecord<Json>>,
    pub created_on_unix_ms: u64,
    pub modified_on_unix_ms: u64,
}

/// Every object record: kind → name → record.
pub type ObjectRecords = BTreeMap<ObjectKind, BTreeMap<String, ObjectRecord>>;

impl ObjectRecord {
    /// The entry this record makes over the file's entry `file` (`None`:
    /// the file has none).
    pub fn value_over(&self, file: Option<&Json>) -> Option<Json> {
        if let Some(value) = &self.value {
            return Some(value.clone());
        }
        let mut value = file?.clone();
        let map = value.as_object_mut()?;
        for (key, record) in &self.fields {
            if record.value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.clone(), record.value.clone());
            }
        }
        Some(value)
    }
}

/// A field changed at run time: what it was set to, and what the
/// configuration file said when it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRecord<T> {
    pub value: T,
    pub file: T,
}

/// The changed fields of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<FieldRecord<bool>>,
    /// When it was disabled (its drain's start), unix ms: for a disable at
    /// run time, and for an endpoint the file disables, so that its drain
    /// keeps its start across restarts and upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<FieldRecord<f64>>,
}

impl EndpointRecord {
    fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.weight.is_none() && self.disabled_at_unix_ms.is_none()
    }
}

/// Every run-time change in force, as the state file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    pub version: u32,
    /// Pool → endpoint → its changed fields.
    #[serde(default)]
    pub endpoints: BTreeMap<String, BTreeMap<String, EndpointRecord>>,
    /// Load balancer → field (`session_affinity_ttl`,
    /// `session_affinity_attributes.drain_duration`, ...) → record, values
    /// in the file's canonical form.
    #[serde(default)]
    pub load_balancers: BTreeMap<String, BTreeMap<String, FieldRecord<Json>>>,
    /// Objects put at run time ([`super::objects`]): kind → name → record.
    /// Rebased on the file by [`super::objects::rebase`], before the fields
    /// above are rebased on the configuration the objects make.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: ObjectRecords,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            version: VERSION,
            endpoints: BTreeMap::new(),
            load_balancers: BTreeMap::new(),
            objects: BTreeMap::new(),
        }
    }
}

/// A load balancer's settings as JSON, in the file's canonical form.
pub fn lb_json(lb: &crate::config::LoadBalancer) -> Json {
    serde_json::to_value(load_balancer_to_value(lb)).unwrap_or(Json::Null)
}

/// The value at a dotted field path (`session_affinity_attributes.secure`);
/// `null` when absent (a load balancer without `fallback_pool`).
pub fn field(lb: &Json, path: &str) -> Json {
    path.split('.')
        .try_fold(lb, |v, key| v.get(key))
        .cloned()
        .unwrap_or(Json::Null)
}

/// Sets the value at a dotted field path; `null` removes the key.
pub fn set_field(lb: &mut Json, path: &str, value: Json) {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (Some(parent), key),
        None => (None, path),
    };
    let mut target = lb;
    if let Some(parent) = parent {
        for k in parent.split('.') {
            let Json::Object(map) = target else { return };
            target = map
                .entry(k.to_string())
                .or_insert_with(|| Json::Object(Default::default()));
        }
    }
    let Json::Object(map) = target else { return };
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_string(), value);
    }
}

/// The fields of `new` that differ from `old` among `fields`.
pub fn changed_fields<'a>(
    old: &Json,
    new: &Json,
    fields: impl Iterator<Item = &'a str>,
) -> Vec<(String, Json, Json)> {
    fields
        .filter_map(|f| {
            let (a, b) = (field(old, f), field(new, f));
            (a != b).then(|| (f.to_string(), a, b))
        })
        .collect()
}

/// What the log lines of a rebase name as the change it follows.
pub struct Rebase {
    /// Who changed a field (`the configuration file`).
    pub changed: &'static str,
    /// Who wins (`the file wins`).
    pub wins: &'static str,
    /// Where the target is no longer (`the configuration file`).
    pub gone: &'static str,
}

impl Rebase {
    /// A rebase on an edited configuration file (start, reload).
    pub const FILE: Rebase = Rebase {
        changed: "the configuration file",
        wins: "the file wins",
        gone: "the configuration file",
    };
    /// A rebase after an object was put or deleted at run time.
    pub const OBJECT: Rebase = Rebase {
        changed: "the object put",
        wins: "the object's value is in force",
        gone: "the configuration",
    };
}

impl Records {
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.load_balancers.is_empty() && self.objects.is_empty()
    }

    pub fn endpoint(&self, pool: &str, endpoint: &str) -> Option<&EndpointRecord> {
        self.endpoints.get(pool)?.get(endpoint)
    }

    fn edit_endpoint(
        &mut self,
        pool: &str,
        endpoint: &str,
        edit: impl FnOnce(&mut EndpointRecord),
    ) {
        let endpoints = self.endpoints.entry(pool.to_string()).or_default();
        let record = endpoints.entry(endpoint.to_string()).or_default();
        edit(record);
        if record.is_empty() {
            endpoints.remove(endpoint);
        }
        if endpoints.is_empty() {
            self.endpoints.remove(pool);
        }
    }

    /// `enabled` set to `value`; `file` is the file's value, `disabled_at` the
    /// drain's start when `value` is false (kept even when the file also
    /// says false). Setting the file's value back removes the record.
    pub fn set_endpoint_enabled(
        &mut self,
        pool: &str,
        endpoint: &str,
        value: bool,
        file: bool,
        disabled_at_unix_ms: Option<u64>,
    ) {
        self.edit_endpoint(pool, endpoint, |r| {
            r.enabled = (value != file).then_some(FieldRecord { value, file });
            r.disabled_at_unix_ms = if value { None } else { disabled_at_unix_ms };
        });
    }

    pub fn set_endpoint_weight(&mut self, pool: &str, endpoint: &str, value: f64, file: f64) {
        self.edit_endpoint(pool, endpoint, |r| {
            r.weight = (value != file).then_some(FieldRecord { value, file });
        });
    }

    /// One load balancer field set to `value` (`null`: absent); `file` is the
    /// file's value. Setting the file's value back removes the record.
    pub fn set_lb_field(&mut self, lb: &str, path: &str, value: Json, file: Json) {
        let fields = self.load_balancers.entry(lb.to_string()).or_default();
        if value == file {
            fields.remove(path);
        } else {
            fields.insert(path.to_string(), FieldRecord { value, file });
        }
        if fields.is_empty() {
            self.load_balancers.remove(lb);
        }
    }

    /// Drops every record of load balancer `lb`.
    pub fn drop_lb(&mut self, lb: &str) {
        self.load_balancers.remove(lb);
    }

    /// The records that still apply over `config`, the file's configuration:
    /// a record of a field whose file value has changed since the record was
    /// made is dropped (the file's edit wins), and so is a record of
    /// something the file no longer has. Returns the kept records and one
    /// line per dropped record, for the log. The object records are kept as
    /// they are: `config` is the configuration they make.
    pub fn rebase(&self, config: &Config) -> (Records, Vec<String>) {
        self.rebase_after(config, &Rebase::FILE)
    }

    /// As [`rebase`](Self::rebase), the log lines naming `after` as what
    /// changed the configuration (a file edit, or an object put or deleted
    /// at run time).
    pub fn rebase_after(&self, config: &Config, after: &Rebase) -> (Records, Vec<String>) {
        let Rebase {
            changed,
            wins,
            gone,
        } = after;
        let mut kept = Records {
            objects: self.objects.clone(),
            ..Records::default()
        };
        let mut dropped = Vec::new();
        for (pool, endpoints) in &self.endpoints {
            for (name, record) in endpoints {
                let Some(file) = config
                    .pools
                    .get(pool)
                    .and_then(|p| p.endpoints.iter().find(|e| &e.name == name))
                else {
                    dropped.push(format!(
                        "pool {pool} endpoint {name} is no longer in {gone}; its run-time changes are dropped"
                    ));
                    continue;
                };
                let mut r = EndpointRecord::default();
                match &record.enabled {
                    Some(enabled) if enabled.file == file.enabled => {
                        r.enabled = Some(enabled.clone());
                    }
                    Some(enabled) => dropped.push(format!(
                        "pool {pool} endpoint {name}: enabled: {changed} changed it from {} to {} since it was set to {} at run time; {wins}",
                        enabled.file, file.enabled, enabled.value
                    )),
                    None => {}
                }
                // Still disabled (by the record or by the file): the drain
                // keeps its start.
                if !r.enabled.as_ref().map_or(file.enabled, |e| e.value) {
                    r.disabled_at_unix_ms = record.disabled_at_unix_ms;
                }
                if let Some(weight) = &record.weight {
                    if weight.file == file.weight {
                        r.weight = Some(weight.clone());
                    } else {
                        dropped.push(format!(
                            "pool {pool} endpoint {name}: weight: {changed} changed it from {} to {} since it was set to {} at run time; {wins}",
                            weight.file, file.weight, weight.value
                        ));
                    }
                }
                if !r.is_empty() {
                    kept.endpoints
                        .entry(pool.clone())
                        .or_default()
                        .insert(name.clone(), r);
                }
            }
        }
        for (lb, fields) in &self.load_balancers {
            let Some(file_lb) = config.load_balancers.get(lb) else {
                dropped.push(format!(
                    "load balancer {lb} is no longer in {gone}; its run-time changes are dropped"
                ));
                continue;
            };
            let file_json = lb_json(file_lb);
            for (path, record) in fields {
                let now_in_file = field(&file_json, path);
                if now_in_file == record.file {
                    kept.set_lb_field(lb, path, record.value.clone(), record.file.clone());
                } else {
                    dropped.push(format!(
                        "load balancer {lb}: {path}: {changed} changed it from {} to {} since it was set to {} at run time; {wins}",
                        record.file, now_in_file, record.value
                    ));
                }
            }
        }
        (kept, dropped)
    }

    /// The load balancer `lb`'s settings: the file's, with its records laid over.
    pub fn overlay_lb(&self, lb: &str, file: &Json) -> Json {
        let mut value = file.clone();
        for (path, record) in self.load_balancers.get(lb).into_iter().flatten() {
            set_field(&mut value, path, record.value.clone());
        }
        value
    }

    /// Reads a version 1 file (overrides without the file's values, whole
    /// load balancers), taking the file's current values as what each
    /// override replaced: it stays in force as it did under version 1.
    pub fn from_v1(v1: &Json, config: &Config) -> Result<Records, String> {
        let mut records = Records::default();
        let object = |v: &Json, what: &str| -> Result<serde_json::Map<String, Json>, String> {
            match v {
                Json::Null => Ok(Default::default()),
                Json::Object(m) => Ok(m.clone()),
                _ => Err(format!("{what}: expected an object")),
            }
        };
        for (pool, endpoints) in object(v1.get("endpoints").unwrap_or(&Json::Null), "endpoints")? {
            for (name, o) in object(&endpoints, "endpoints")? {
                let Some(file) = config
                    .pools
                    .get(&pool)
                    .and_then(|p| p.endpoints.iter().find(|e| e.name == name))
                else {
                    continue;
                };
                let disabled_at = o.get("disabled_at_unix_ms").and_then(Json::as_u64);
                let enabled = o
                    .get("enabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(file.enabled);
                records.set_endpoint_enabled(&pool, &name, enabled, file.enabled, disabled_at);
                if let Some(weight) = o.get("weight").and_then(Json::as_f64) {
                    records.set_endpoint_weight(&pool, &name, weight, file.weight);
                }
            }
        }
        let lbs = object(
            v1.get("load_balancers").unwrap_or(&Json::Null),
            "load_balancers",
        )?;
        for (name, whole) in lbs {
            let Some(file_lb) = config.load_balancers.get(&name) else {
                continue;
            };
            let file_json = lb_json(file_lb);
            let fields: Vec<String> = crate::config::runtime_fields().collect();
            for (path, file, value) in
                changed_fields(&file_json, &whole, fields.iter().map(String::as_str))
            {
                // A v1 copy always had every attribute; a missing one is no change.
                if value.is_null() && path.starts_with(ATTRIBUTES) {
                    continue;
                }
                records.set_lb_field(&name, &path, value, file);
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OriginSteering;
    use crate::state::fixtures::{config, pool};
    use serde_json::json;

    fn cfg() -> Config {
        config(vec![pool("p", 3, OriginSteering::Random)], &["p"], None)
    }

    #[test]
    fn setting_the_file_value_back_removes_the_record() {
        let mut r = Records::default();
        r.set_endpoint_enabled("p", "p-0", false, true, Some(5));
        r.set_endpoint_weight("p", "p-0", 0.5, 1.0);
        assert_eq!(r.endpoint("p", "p-0").unwrap().disabled_at_unix_ms, Some(5));
        r.set_endpoint_enabled("p", "p-0", true, true, None);
        r.set_endpoint_weight("p", "p-0", 1.0, 1.0);
        assert!(r.is_empty(), "{r:?}");
        r.set_lb_field("*", "session_affinity_ttl", json!(600), json!(0));
        r.set_lb_field("*", "session_affinity_ttl", json!(0), json!(0));
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_file_edit_after_a_run_time_change_wins_for_that_field_only() {
        let base = cfg();
        let mut r = Records::default();
        r.set_lb_field("*", "session_affinity", json!("cookie"), json!("none"));
        r.set_lb_field("*", "session_affinity_ttl", json!(82800), json!(0));
        r.set_endpoint_weight("p", "p-1", 0.25, 1.0);
        r.set_endpoint_enabled("p", "p-2", false, true, Some(1));

        let (same, dropped) = r.rebase(&base);
        assert_eq!(same, r, "nothing changed in the file");
        assert!(dropped.is_empty());

        let mut edited = base.clone();
        let lb = edited.load_balancers.get_mut("*").unwrap();
        lb.session_affinity = crate::config::SessionAffinity::Cookie;
        lb.session_affinity_ttl = std::time::Duration::from_secs(3600);
        edited.pools.get_mut("p").unwrap().endpoints[1].weight = 0.5;
        let (kept, dropped) = r.rebase(&edited);
        assert_eq!(dropped.len(), 3, "{dropped:#?}");
        assert!(dropped[0].contains("p-1: weight"), "{dropped:#?}");
        assert!(dropped.iter().any(|d| d.contains(
            "load balancer *: session_affinity_ttl: the configuration file changed it from 0 to 3600 since it was set to 82800 at run time; the file wins"
        )), "{dropped:#?}");
        assert_eq!(kept.endpoint("p", "p-2"), r.endpoint("p", "p-2"));
        assert!(kept.endpoint("p", "p-1").is_none());
        assert!(kept.load_balancers.is_empty(), "{kept:?}");
    }

    #[test]
    fn a_drain_keeps_its_start_when_the_file_takes_the_disable_over() {
        let mut r = Records::default();
        r.set_endpoint_enabled("p", "p-0", false, true, Some(42));
        let mut edited = cfg();
        edited.pools.get_mut("p").unwrap().endpoints[0].enabled = false;
        let (kept, dropped) = r.rebase(&edited);
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        let record = kept.endpoint("p", "p-0").unwrap();
        assert_eq!(
            (record.enabled.as_ref(), record.disabled_at_unix_ms),
            (None, Some(42))
        );
        // Enabled in the file again: no drain left to keep.
        let (kept, _) = kept.rebase(&cfg());
        assert!(kept.is_empty(), "{kept:?}");
    }

    #[test]
    fn records_of_removed_things_are_dropped() {
        let mut r = Records::default();
        r.set_endpoint_weight("p", "gone", 0.5, 1.0);
        r.set_lb_field("old.example.com", "enabled", json!(false), json!(true));
        let (kept, dropped) = r.rebase(&cfg());
        assert!(kept.is_empty());
        assert_eq!(dropped.len(), 2);
    }

    #[test]
    fn fields_read_and_write_dotted_paths() {
        let mut v = json!({"a": 1, "session_affinity_attributes": {"secure": "Auto"}});
        assert_eq!(
            field(&v, "session_affinity_attributes.secure"),
            json!("Auto")
        );
        assert_eq!(field(&v, "fallback_pool"), Json::Null);
        set_field(
            &mut v,
            "session_affinity_attributes.secure",
            json!("Always"),
        );
        set_field(&mut v, "fallback_pool", json!("q"));
        set_field(&mut v, "a", Json::Null);
        assert_eq!(
            v,
            json!({"fallback_pool": "q", "session_affinity_attributes": {"secure": "Always"}})
        );
    }

    #[test]
    fn the_overlay_is_the_file_with_the_records_laid_over() {
        let base = cfg();
        let file = lb_json(&base.load_balancers["*"]);
        let mut r = Records::default();
        r.set_lb_field(
            "*",
            "session_affinity_attributes.drain_duration",
            json!(30),
            json!(0),
        );
        let over = r.overlay_lb("*", &file);
        assert_eq!(
            field(&over, "session_affinity_attributes.drain_duration"),
            json!(30)
        );
        assert_eq!(
            changed_fields(
                &file,
                &over,
                ["enabled", "session_affinity_attributes.drain_duration"].into_iter()
            ),
            vec![(
                "session_affinity_attributes.drain_duration".to_string(),
                json!(0),
                json!(30)
            )]
        );
    }

    #[test]
    fn version_1_files_are_read_as_records_over_the_current_file() {
        let base = cfg();
        let mut whole = lb_json(&base.load_balancers["*"]);
        set_field(&mut whole, "session_affinity", json!("source_ip"));
        set_field(&mut whole, "session_affinity_ttl", json!(600));
        let v1 = json!({
            "version": 1,
            "endpoints": {"p": {"p-0": {"enabled": false, "disabled_at_unix_ms": 77}, "p-1": {"weight": 0.5}, "gone": {"weight": 0.1}}},
            "load_balancers": {"*": whole}
        });
        let r = Records::from_v1(&v1, &base).unwrap();
        let p0 = r.endpoint("p", "p-0").unwrap();
        assert_eq!(
            p0.enabled,
            Some(FieldRecord {
                value: false,
                file: true
            })
        );
        assert_eq!(p0.disabled_at_unix_ms, Some(77));
        assert_eq!(
            r.endpoint("p", "p-1").unwrap().weight,
            Some(FieldRecord {
                value: 0.5,
                file: 1.0
            })
        );
        assert_eq!(r.load_balancers["*"].len(), 2, "{r:?}");
        assert_eq!(
            r.load_balancers["*"]["session_affinity_ttl"],
            FieldRecord {
                value: json!(600),
                file: json!(0)
            }
        );
    }
}
