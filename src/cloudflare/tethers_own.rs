//! Tether's own keys: what a `tether:` monitor, pool, endpoint or load
//! balancer has and Cloudflare's object does not carry. A Cloudflare client
//! cannot see or set them, so a `PUT` or `PATCH` through the Cloudflare API
//! keeps them as they were ([`keep_pool`], [`keep_monitor`],
//! [`keep_load_balancer`]); the lists below are what docs/cloudflare-api.md
//! names, and a test holds them equal to what an export → import round trip
//! loses. Pure.

use std::time::Duration;

use crate::config;

/// A pool's keys with no Cloudflare field.
pub const POOL_KEYS: &[&str] = &[
    "outlier_detection",
    "protocol",
    "read_timeout",
    "slow_start",
    "tls",
];

/// An endpoint's keys with no field of Cloudflare's origin (matched by its
/// `name`).
pub const ENDPOINT_KEYS: &[&str] = &["server_name"];

/// A monitor's keys with no Cloudflare field.
pub const MONITOR_KEYS: &[&str] = &["grpc_service"];

/// A load balancer's keys with no Cloudflare field.
pub const LOAD_BALANCER_KEYS: &[&str] = &["always_use_https"];

/// `new` (read from a Cloudflare pool) with [`POOL_KEYS`] and each endpoint's
/// [`ENDPOINT_KEYS`] taken from `old`, the pool it replaces.
pub fn keep_pool(old: &config::Pool, new: &mut config::Pool) {
    new.outlier_detection = old.outlier_detection;
    new.protocol = old.protocol;
    new.read_timeout = old.read_timeout;
    new.slow_start = old.slow_start;
    new.tls = old.tls.clone();
    for e in &mut new.endpoints {
        if let Some(o) = old.endpoints.iter().find(|o| o.name == e.name) {
            e.server_name = o.server_name.clone();
        }
    }
}

/// `new` (read from a Cloudflare monitor) with [`MONITOR_KEYS`] taken from
/// `old`, and `old`'s sub-second `interval` / `timeout` where `new` has the
/// whole seconds Cloudflare's form showed of it (a `0.2` shows as `0`).
pub fn keep_monitor(old: &config::Monitor, new: &mut config::Monitor) {
    new.grpc_service = old.grpc_service.clone();
    let shown = |d: Duration| Duration::from_secs(d.as_secs());
    if new.interval == shown(old.interval) {
        new.interval = old.interval;
    }
    if new.timeout == shown(old.timeout) {
        new.timeout = old.timeout;
    }
}

/// `new` (read from a Cloudflare load balancer) with [`LOAD_BALANCER_KEYS`]
/// taken from `old`.
pub fn keep_load_balancer(old: &config::LoadBalancer, new: &mut config::LoadBalancer) {
    new.always_use_https = old.always_use_https;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::{export, import, object_id, Notes, ObjectKind};
    use serde_json::Value as Json;
    use std::collections::BTreeSet;

    const FILE: &str = "tether:
  listeners: [{address: '127.0.0.1:8080'}]
  monitors:
    m: {type: grpc, grpc_service: svc.Health, interval: 0.2, timeout: 0.1, retries: 0, port: 9}
  pools:
    p:
      protocol: h2
      monitor: m
      minimum_origins: 1
      slow_start: 30
      tls: {verify: false}
      read_timeout: 7
      outlier_detection: {consecutive_5xx: 2}
      load_shedding: {default_percent: 10, default_policy: hash}
      endpoints:
      - {name: a, address: '127.0.0.1:1', weight: 0.5, header: {Host: [a.example]}}
      - {name: b, address: '127.0.0.1:2', enabled: false, server_name: b.internal}
  load_balancers:
    www.example.com: {default_pools: [p], always_use_https: true, session_affinity: cookie}
";

    fn config() -> config::Config {
        crate::config::load_str(FILE).expect("config").tether
    }

    fn keys(v: &Json) -> BTreeSet<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The top-level keys whose values differ between `a` and `b`.
    fn differing(a: &impl serde::Serialize, b: &impl serde::Serialize) -> BTreeSet<String> {
        let (a, b) = (
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap(),
        );
        keys(&a)
            .union(&keys(&b))
            .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
            .cloned()
            .collect()
    }

    fn json(v: &impl serde::Serialize) -> Json {
        serde_json::to_value(v).unwrap()
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn id_of(k: ObjectKind, n: &str) -> String {
        object_id(k, n)
    }

    fn name_of(c: &config::Config) -> impl Fn(ObjectKind, &str) -> Option<String> + '_ {
        move |k, id| {
            let names: Vec<&String> = match k {
                ObjectKind::Monitor => c.monitors.keys().collect(),
                ObjectKind::Pool => c.pools.keys().collect(),
                ObjectKind::LoadBalancer => c.load_balancers.keys().collect(),
            };
            names.into_iter().find(|n| object_id(k, n) == id).cloned()
        }
    }

    /// Every key an export → import round trip loses is on the lists (so
    /// the lists are whole), and keeping them gives the object back.
    #[test]
    fn the_lists_are_what_a_round_trip_through_cloudflare_loses() {
        let c = config();
        let names = name_of(&c);
        let mut notes = Notes::default();

        let old = &c.pools["p"];
        let cf = export::pool(old, &id_of);
        let mut new = import::pool(&cf, "pool", &names, &mut notes).expect("pool");
        assert_eq!(
            differing(old, &new),
            set(POOL_KEYS)
                .union(&set(&["endpoints"]))
                .cloned()
                .collect()
        );
        let endpoint_lost: BTreeSet<String> = old
            .endpoints
            .iter()
            .zip(&new.endpoints)
            .flat_map(|(a, b)| differing(a, b))
            .collect();
        assert_eq!(endpoint_lost, set(ENDPOINT_KEYS));
        keep_pool(old, &mut new);
        assert_eq!(json(&new), json(old));

        let old = &c.monitors["m"];
        let cf = export::monitor(old, &id_of);
        let mut new = import::monitor(&cf, "m", "monitor", &mut notes);
        let lost = differing(old, &new);
        assert_eq!(
            lost,
            set(MONITOR_KEYS)
                .union(&set(&["interval", "timeout"]))
                .cloned()
                .collect(),
            "interval and timeout: whole seconds"
        );
        keep_monitor(old, &mut new);
        assert_eq!(json(&new), json(old));

        let old = &c.load_balancers["www.example.com"];
        let cf = export::load_balancer(old, &id_of);
        let mut new = import::load_balancer(&cf, "lb", &names, &mut notes).expect("lb");
        assert_eq!(differing(old, &new), set(LOAD_BALANCER_KEYS));
        keep_load_balancer(old, &mut new);
        assert_eq!(json(&new), json(old));
        assert!(notes.refused.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_changed_interval_is_not_kept() {
        let old = &config().monitors["m"];
        let mut new = old.clone();
        new.interval = Duration::from_secs(5);
        new.timeout = Duration::from_secs(0);
        keep_monitor(old, &mut new);
        assert_eq!(new.interval, Duration::from_secs(5));
        assert_eq!(
            new.timeout,
            Duration::from_millis(100),
            "0 is what 0.1 shows"
        );
    }
}
