//! [`LbPatch`]: a run-time change to one load balancer, typed. Each field is
//! a run-time key of the file ([`LOAD_BALANCER_KEYS`]), `None` when the
//! patch leaves it. Read from JSON (the admin API's body, a cluster peer's
//! batch) with the configuration's own readers, so a wrong type or an
//! unknown spelling is refused with the file's message naming its field;
//! the rules between fields (a TTL's range for its affinity type, pools
//! that exist, `header` affinity naming a header) are the file's, checked
//! when the owner of changes lays the patch over a load balancer
//! ([`super::plan`]). Its JSON form is the map of the keys it sets, as the
//! untyped patch of earlier versions was, so replicas of either version
//! read each other's batches.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::config::read::{Errors, Node, Obj};
use crate::config::{
    self, runtime_keys, SameSite, Secure, SessionAffinity, Settable, Spelled, SteeringPolicy,
    ZeroDowntimeFailover, ATTRIBUTES, ATTRIBUTE_KEYS, LOAD_BALANCER_KEYS,
};

/// A patch of one load balancer's run-time keys. `null` is refused for
/// every key but `fallback_pool`, where it clears the fallback pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Json>", into = "Map<String, Json>")]
pub struct LbPatch {
    pub enabled: Option<bool>,
    pub default_pools: Option<Vec<String>>,
    /// `Some(None)`: cleared (`null`).
    pub fallback_pool: Option<Option<String>>,
    pub steering_policy: Option<SteeringPolicy>,
    pub session_affinity: Option<SessionAffinity>,
    /// Seconds. Without it, a new `session_affinity` takes its type's
    /// default TTL; the same type keeps its TTL.
    pub session_affinity_ttl: Option<Seconds>,
    /// Merged key by key into the load balancer's attributes.
    pub session_affinity_attributes: AttributesPatch,
}

/// The `session_affinity_attributes` a patch sets, each `None` when left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributesPatch {
    pub samesite: Option<SameSite>,
    pub secure: Option<Secure>,
    /// Seconds.
    pub drain_duration: Option<Seconds>,
    pub zero_downtime_failover: Option<ZeroDowntimeFailover>,
    pub headers: Option<Vec<String>>,
    pub require_all_headers: Option<bool>,
}

/// A whole number of seconds as given: its range is the file's rule,
/// checked when the patch is laid over a load balancer, whose message then
/// shows the number given (however large).
#[derive(Debug, Clone, PartialEq)]
pub struct Seconds(serde_json::Number);

impl Seconds {
    pub fn new(secs: u64) -> Self {
        Seconds(secs.into())
    }
    /// `None`: negative or beyond `u64`.
    pub fn get(&self) -> Option<u64> {
        self.0.as_u64()
    }
}

impl AttributesPatch {
    pub fn is_empty(&self) -> bool {
        *self == AttributesPatch::default()
    }
}

/// Why a patch does not read: one message per problem, each naming its
/// field (`enabled: expected a boolean, got a string ("yes")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchErrors(pub Vec<String>);

impl fmt::Display for PatchErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl LbPatch {
    /// Reads a patch from the keys of the file. Keys that are not run-time
    /// keys are refused first (`foo: unknown field`, `rules: cannot be
    /// changed at run time`), then every value is read as the file's is.
    pub fn from_json(fields: &Map<String, Json>) -> Result<LbPatch, PatchErrors> {
        let problems: Vec<String> = fields
            .keys()
            .filter_map(
                |k| match LOAD_BALANCER_KEYS.iter().find(|(key, _)| key == k) {
                    Some((_, Settable::RunTime)) => None,
                    Some((_, Settable::FileOnly)) => {
                        Some(format!("{k}: cannot be changed at run time"))
                    }
                    None if k == "name" => Some(format!("{k}: cannot be changed at run time")),
                    None => Some(format!("{k}: unknown field")),
                },
            )
            .collect();
        if !problems.is_empty() {
            return Err(PatchErrors(problems));
        }
        let yaml = serde_yaml::to_value(fields)
            .map_err(|e| PatchErrors(vec![format!("internal error: {e}")]))?;
        let mut errs = Errors::new();
        let node = Node::new(&yaml, "", vec![]);
        let keys: Vec<&str> = runtime_keys().collect();
        let patch = node.object(&mut errs, &keys).map(|o| read(&o, &mut errs));
        errs.finish(patch)
            .map_err(|e| PatchErrors(e.0.iter().map(ToString::to_string).collect()))
    }

    /// Every run-time key of `lb` (its fallback pool `null` when it has
    /// none): applied anywhere, it gives these settings whatever came before.
    pub fn whole(lb: &config::LoadBalancer) -> LbPatch {
        let a = &lb.session_affinity_attributes;
        LbPatch {
            enabled: Some(lb.enabled),
            default_pools: Some(lb.default_pools.clone()),
            fallback_pool: Some(lb.fallback_pool.clone()),
            steering_policy: Some(lb.steering_policy),
            session_affinity: Some(lb.session_affinity),
            session_affinity_ttl: Some(Seconds::new(lb.session_affinity_ttl.as_secs())),
            session_affinity_attributes: AttributesPatch {
                samesite: Some(a.samesite),
                secure: Some(a.secure),
                drain_duration: Some(Seconds::new(a.drain_duration.as_secs())),
                zero_downtime_failover: Some(a.zero_downtime_failover),
                headers: Some(a.headers.clone()),
                require_all_headers: Some(a.require_all_headers),
            },
        }
    }

    /// The keys it sets, as the file spells them (canonical spellings).
    pub fn to_json(&self) -> Map<String, Json> {
        fn put<T>(map: &mut Map<String, Json>, key: &str, v: &Option<T>, f: impl Fn(&T) -> Json) {
            if let Some(v) = v {
                map.insert(key.to_string(), f(v));
            }
        }
        let strings = |v: &Vec<String>| Json::from(v.clone());
        let mut map = Map::new();
        put(&mut map, "enabled", &self.enabled, |v| Json::from(*v));
        put(&mut map, "default_pools", &self.default_pools, strings);
        put(&mut map, "fallback_pool", &self.fallback_pool, |v| {
            v.as_deref().map_or(Json::Null, Json::from)
        });
        put(&mut map, "steering_policy", &self.steering_policy, |v| {
            Json::from(v.name())
        });
        put(&mut map, "session_affinity", &self.session_affinity, |v| {
            Json::from(v.name())
        });
        put(
            &mut map,
            "session_affinity_ttl",
            &self.session_affinity_ttl,
            |v| Json::Number(v.0.clone()),
        );
        let a = &self.session_affinity_attributes;
        if !a.is_empty() {
            let mut attrs = Map::new();
            put(&mut attrs, "samesite", &a.samesite, |v| {
                Json::from(v.name())
            });
            put(&mut attrs, "secure", &a.secure, |v| Json::from(v.name()));
            put(&mut attrs, "drain_duration", &a.drain_duration, |v| {
                Json::Number(v.0.clone())
            });
            put(
                &mut attrs,
                "zero_downtime_failover",
                &a.zero_downtime_failover,
                |v| Json::from(v.name()),
            );
            put(&mut attrs, "headers", &a.headers, strings);
            put(
                &mut attrs,
                "require_all_headers",
                &a.require_all_headers,
                |v| Json::from(*v),
            );
            map.insert(ATTRIBUTES.to_string(), Json::Object(attrs));
        }
        map
    }
}

impl TryFrom<Map<String, Json>> for LbPatch {
    type Error = PatchErrors;
    fn try_from(fields: Map<String, Json>) -> Result<Self, Self::Error> {
        LbPatch::from_json(&fields)
    }
}

impl From<LbPatch> for Map<String, Json> {
    fn from(patch: LbPatch) -> Self {
        patch.to_json()
    }
}

/// An integer of any size (integral floats count, as in the file; `30.0`
/// is kept as `30`).
fn int(node: &Node<'_>, errs: &mut Errors) -> Option<Seconds> {
    if let serde_yaml::Value::Number(n) = node.value {
        if let Some(i) = n.as_i64() {
            return Some(Seconds(i.into()));
        }
        if let Some(u) = n.as_u64() {
            return Some(Seconds(u.into()));
        }
        if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Some(serde_json::Number::from(f as u64))
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Some(serde_json::Number::from(f as i64))
            } else {
                serde_json::Number::from_f64(f)
            };
            if let Some(whole) = whole {
                return Some(Seconds(whole));
            }
        }
    }
    // Not an integer: the file's reader says so (its range is not reached).
    node.int(errs, 0, 0);
    None
}

fn strings(node: &Node<'_>, errs: &mut Errors) -> Option<Vec<String>> {
    let items = node.list(errs)?;
    let read: Vec<Option<String>> = items
        .iter()
        .map(|item| item.str(errs).map(str::to_string))
        .collect();
    read.into_iter().collect()
}

/// The keys `o` has (all run-time keys; `null` given is a type error but
/// for `fallback_pool`). Problems go to `errs`; the patch is then unused.
fn read(o: &Obj<'_>, errs: &mut Errors) -> LbPatch {
    // `req` finds a key even when null; only keys present are asked for.
    let given = |key: &str| o.node.value.get(key).is_some();
    let mut patch = LbPatch::default();
    for key in runtime_keys().filter(|k| given(k)) {
        let Some(node) = o.req(errs, key) else {
            continue;
        };
        match key {
            "enabled" => patch.enabled = node.bool(errs),
            "default_pools" => patch.default_pools = strings(node, errs),
            "fallback_pool" if node.value.is_null() => patch.fallback_pool = Some(None),
            "fallback_pool" => patch.fallback_pool = node.str(errs).map(|s| Some(s.to_string())),
            "steering_policy" => {
                patch.steering_policy = node.choice(errs, SteeringPolicy::SPELLINGS)
            }
            "session_affinity" => {
                patch.session_affinity = node.choice(errs, SessionAffinity::SPELLINGS)
            }
            "session_affinity_ttl" => patch.session_affinity_ttl = int(node, errs),
            ATTRIBUTES => {
                if let Some(a) = node.object(errs, ATTRIBUTE_KEYS) {
                    patch.session_affinity_attributes = read_attributes(&a, errs);
                }
            }
            _ => {}
        }
    }
    patch
}

fn read_attributes(o: &Obj<'_>, errs: &mut Errors) -> AttributesPatch {
    let given = |key: &str| o.node.value.get(key).is_some();
    let mut a = AttributesPatch::default();
    for key in ATTRIBUTE_KEYS.iter().copied().filter(|k| given(k)) {
        let Some(node) = o.req(errs, key) else {
            continue;
        };
        match key {
            "samesite" => a.samesite = node.choice(errs, SameSite::SPELLINGS),
            "secure" => a.secure = node.choice(errs, Secure::SPELLINGS),
            "drain_duration" => a.drain_duration = int(node, errs),
            "zero_downtime_failover" => {
                a.zero_downtime_failover = node.choice(errs, ZeroDowntimeFailover::SPELLINGS)
            }
            "headers" => a.headers = strings(node, errs),
            "require_all_headers" => a.require_all_headers = node.bool(errs),
            _ => {}
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Json) -> Result<LbPatch, Vec<String>> {
        let Json::Object(map) = v else {
            panic!("not an object")
        };
        LbPatch::from_json(&map).map_err(|e| e.0)
    }

    #[test]
    fn every_run_time_key_reads_typed() {
        let p = parse(json!({
            "enabled": false,
            "default_pools": ["a", "b"],
            "fallback_pool": "c",
            "steering_policy": "",
            "session_affinity": "ip_cookie",
            "session_affinity_ttl": 3600,
            "session_affinity_attributes": {"samesite": "Lax", "drain_duration": 30.0, "headers": ["X-User"]},
        }))
        .unwrap();
        assert_eq!(p.enabled, Some(false));
        assert_eq!(p.default_pools, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.fallback_pool, Some(Some("c".into())));
        assert_eq!(p.steering_policy, Some(SteeringPolicy::Off));
        assert_eq!(p.session_affinity, Some(SessionAffinity::IpCookie));
        assert_eq!(p.session_affinity_ttl, Some(Seconds::new(3600)));
        let a = &p.session_affinity_attributes;
        assert_eq!(
            (a.samesite, a.drain_duration.clone(), a.headers.clone()),
            (
                Some(SameSite::Lax),
                Some(Seconds::new(30)),
                Some(vec!["X-User".into()])
            )
        );
        assert_eq!((a.secure, a.require_all_headers), (None, None));
        // Its JSON form is the keys it sets, canonically spelled.
        assert_eq!(
            Json::Object(p.to_json()),
            json!({
                "enabled": false,
                "default_pools": ["a", "b"],
                "fallback_pool": "c",
                "steering_policy": "off",
                "session_affinity": "ip_cookie",
                "session_affinity_ttl": 3600,
                "session_affinity_attributes": {"samesite": "Lax", "drain_duration": 30, "headers": ["X-User"]},
            })
        );
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(
            parse(json!({"foo": 1, "rules": [], "name": "x", "enabled": true})).unwrap_err(),
            [
                "foo: unknown field",
                "name: cannot be changed at run time",
                "rules: cannot be changed at run time",
            ]
        );
        assert_eq!(
            parse(json!({
                "enabled": "yes",
                "default_pools": ["a", 1],
                "steering_policy": "fastest",
                "session_affinity_ttl": 1.5,
                "session_affinity_attributes": {"secure": "Sometimes", "drain": 5},
            }))
            .unwrap_err(),
            [
                r#"default_pools[1]: expected a string, got an integer (1)"#,
                r#"enabled: expected a boolean, got a string ("yes")"#,
                "session_affinity_attributes.drain: unknown key (expected one of: samesite, secure, drain_duration, zero_downtime_failover, headers, require_all_headers)",
                r#"session_affinity_attributes.secure: must be one of Auto, Always, Never; got "Sometimes""#,
                "session_affinity_ttl: expected an integer, got a number (1.5)",
                r#"steering_policy: must be one of "", off, random, least_outstanding_requests, dynamic_latency; got "fastest""#,
            ]
        );
        // null clears only the fallback pool.
        assert_eq!(
            parse(json!({"session_affinity": null})).unwrap_err(),
            ["session_affinity: expected a string, got null"]
        );
    }

    #[test]
    fn null_clears_the_fallback_pool() {
        let p = parse(json!({"fallback_pool": null})).unwrap();
        assert_eq!(p.fallback_pool, Some(None));
        assert_eq!(Json::Object(p.to_json()), json!({"fallback_pool": null}));
        // Absent: left as it is.
        assert_eq!(parse(json!({})).unwrap().fallback_pool, None);
    }

    #[test]
    fn the_json_form_is_the_untyped_patch_of_earlier_versions() {
        let wire =
            r#"{"enabled":true,"session_affinity_attributes":{"zero_downtime_failover":"sticky"}}"#;
        let p: LbPatch = serde_json::from_str(wire).unwrap();
        assert_eq!(
            p.session_affinity_attributes.zero_downtime_failover,
            Some(ZeroDowntimeFailover::Sticky)
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), wire);
        let bad: Result<LbPatch, _> = serde_json::from_str(r#"{"rules":[]}"#);
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("rules: cannot be changed at run time"));
    }
}
