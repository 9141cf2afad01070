//! A configuration with objects (monitors, pools, load balancers) put or
//! removed at run time: the file's configuration written back to its
//! `tether:` YAML (the model serialises to exactly what the reader accepts),
//! the entries replaced, and the whole read again by the same reader and
//! checks as the file ([`super::load_str`]). Nothing is trusted that the
//! file would not be allowed to say.
//!
//! Only the entries put are checked against the world (host names
//! resolved, CA and client certificate files read): every other entry keeps
//! what the base configuration resolved and loaded, so a change of one
//! object neither depends on nor changes anything of the others (an
//! unrelated host name that fails to resolve now, a CA rewritten on disk
//! since the file was loaded), and the files named outside the objects
//! (state file, token, keys) are not touched at all.

use serde_yaml::{Mapping, Value};

use super::load::load_str_checking;
use super::model::Config;
use super::read::{join_key, ConfigError, ConfigErrors, Deferred};

/// One entry of a section of `tether:` to lay over a configuration.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// `monitors`, `pools` or `load_balancers`.
    pub section: &'static str,
    pub name: &'a str,
    /// The entry's value in the file's form (JSON); `None` removes it.
    pub value: Option<&'a serde_json::Value>,
}

/// `base` with `entries` laid over in order, validated as a whole file is,
/// except that the deferred checks (files, host names) run only for the
/// entries put; every other pool keeps `base`'s resolved endpoint addresses
/// and loaded TLS material ([`carry_over`]).
/// Errors carry the key paths a file would get (`tether.pools.web.endpoints[0].address`).
pub fn with_entries(base: &Config, entries: &[Entry<'_>]) -> Result<Config, ConfigErrors> {
    let internal = |e: String| ConfigErrors::one("", format!("internal error: {e}"));
    let mut tether = match serde_yaml::to_value(base).map_err(|e| internal(e.to_string()))? {
        Value::Mapping(m) => m,
        _ => return Err(internal("the configuration is not a mapping".into())),
    };
    for entry in entries {
        let key = Value::String(entry.section.to_string());
        let section = tether
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !section.is_mapping() {
            *section = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(section) = section else {
            continue;
        };
        let name = Value::String(entry.name.to_string());
        match entry.value {
            Some(json) => {
                let yaml = serde_yaml::to_value(json).map_err(|e| internal(e.to_string()))?;
                section.insert(name, yaml);
            }
            None => {
                section.remove(&name);
            }
        }
    }
    let mut doc = Mapping::new();
    doc.insert(Value::String("tether".into()), Value::Mapping(tether));
    let text = serde_yaml::to_string(&doc).map_err(|e| internal(e.to_string()))?;
    let put: Vec<String> = entries
        .iter()
        .filter(|e| e.value.is_some())
        .map(|e| join_key(&join_key("tether", e.section), e.name))
        .collect();
    let mut config = load_str_checking(&text, |d| put.iter().any(|p| is_under(d, p)))?.tether;
    carry_over(base, &mut config, entries);
    Ok(config)
}

/// Whether the deferred check `d` was asked for at or under the key path `at`.
fn is_under(d: &Deferred, at: &str) -> bool {
    d.path
        .strip_prefix(at)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// What the checks left undone in `config` for the pools `entries` did not
/// put, taken from `base`: each endpoint's resolved `socket_addr` (same name
/// and address as written) and the pool's `tls.loaded`.
fn carry_over(base: &Config, config: &mut Config, entries: &[Entry<'_>]) {
    for (name, pool) in config.pools.iter_mut() {
        let put = entries
            .iter()
            .any(|e| e.section == "pools" && e.name == name && e.value.is_some());
        let Some(was) = base.pools.get(name).filter(|_| !put) else {
            continue;
        };
        for endpoint in &mut pool.endpoints {
            let same = was
                .endpoints
                .iter()
                .find(|e| e.name == endpoint.name && e.address == endpoint.address);
            if let Some(same) = same {
                endpoint.socket_addr = same.socket_addr;
            }
        }
        if let (Some(tls), Some(was_tls)) = (pool.tls.as_mut(), was.tls.as_ref()) {
            if tls.ca_path == was_tls.ca_path
                && tls.client_cert_path == was_tls.client_cert_path
                && tls.client_key_path == was_tls.client_key_path
            {
                tls.loaded = was_tls.loaded.clone();
            }
        }
    }
}

/// The entry `name` of `section` in `config` as the file writes it (JSON),
/// `None` when the configuration has no such entry.
pub fn entry_value(config: &Config, section: &str, name: &str) -> Option<serde_json::Value> {
    let value = match section {
        "monitors" => serde_json::to_value(config.monitors.get(name)?),
        "pools" => serde_json::to_value(config.pools.get(name)?),
        "load_balancers" => serde_json::to_value(config.load_balancers.get(name)?),
        _ => return None,
    };
    value.ok()
}

/// The messages of `errors`, one each, with their key paths.
pub fn messages(errors: &ConfigErrors) -> Vec<String> {
    errors.0.iter().map(ConfigError::to_string).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::load_str;
    use serde_json::json;

    /// A small file with one monitor, pool and load balancer (also the
    /// owner of changes' object tests' base).
    pub(crate) const FILE: &str = "tether:
  listeners: [{address: '127.0.0.1:8080'}]
  monitors:
    m: {type: http, path: /health}
  pools:
    p:
      monitor: m
      endpoints: [{name: a, address: '127.0.0.1:9001'}]
  load_balancers:
    '*': {default_pools: [p]}
";

    fn base() -> Config {
        load_str(FILE).unwrap().tether
    }

    #[test]
    fn entries_are_laid_over_and_read_as_the_file_is() {
        let pool =
            json!({"endpoints": [{"name": "b", "address": "127.0.0.1:9002", "weight": 0.5}]});
        let lb = json!({"default_pools": ["q"], "fallback_pool": "p"});
        let c = with_entries(
            &base(),
            &[
                Entry {
                    section: "pools",
                    name: "q",
                    value: Some(&pool),
                },
                Entry {
                    section: "load_balancers",
                    name: "a.example",
                    value: Some(&lb),
                },
            ],
        )
        .unwrap();
        assert_eq!(c.pools["q"].endpoints[0].weight, 0.5);
        assert_eq!(c.load_balancers["a.example"].default_pools, vec!["q"]);
        assert_eq!(entry_value(&c, "pools", "q").unwrap(), pool);
        assert_eq!(c.pools["p"], base().pools["p"], "the rest as it was");
    }

    #[test]
    fn errors_name_their_key_paths_and_references_are_checked() {
        let bad = json!({"endpoints": [{"name": "b", "address": "nowhere"}], "monitor": "x"});
        let e = with_entries(
            &base(),
            &[Entry {
                section: "pools",
                name: "q",
                value: Some(&bad),
            }],
        )
        .unwrap_err();
        let all = messages(&e).join("\n");
        assert!(all.contains("tether.pools.q.monitor"), "{all}");
        assert!(all.contains("tether.pools.q.endpoints[0].address"), "{all}");

        let e = with_entries(
            &base(),
            &[Entry {
                section: "pools",
                name: "p",
                value: None,
            }],
        )
        .unwrap_err();
        let all = messages(&e).join("\n");
        assert!(all.contains("tether.load_balancers"), "{all}");
    }

    #[test]
    fn a_put_checks_only_its_own_entry_and_keeps_the_others_as_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::copy("conf/example-cert.pem", &ca).unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&state_dir).unwrap();
        let file = FILE.replace(
            "  monitors:",
            &format!(
                "  state_file: {}\n  monitors:",
                state_dir.join("s.json").display()
            ),
        )
        .replace(
            "  load_balancers:",
            &format!(
                "    t:\n      tls: {{ca_path: {}}}\n      endpoints: [{{name: a, address: 'localhost:9003'}}]\n  load_balancers:",
                ca.display()
            ),
        );
        let mut base = load_str(&file).unwrap().tether;
        let fingerprint = base.pools["t"].tls.as_ref().unwrap().loaded.ca_fingerprint;
        assert_ne!(fingerprint, 0);
        // Since the file was loaded: p's host name no longer resolves (it
        // did, to 10.9.8.7), t's CA file is gone, and so is the state file's
        // directory. None of it is the business of a put of pool q.
        let p = base.pools.get_mut("p").unwrap();
        p.endpoints[0].address = "tether-test.invalid:9001".into();
        p.endpoints[0].socket_addr = "10.9.8.7:9001".parse().unwrap();
        std::fs::remove_file(&ca).unwrap();
        std::fs::remove_dir(&state_dir).unwrap();
        let q = json!({"endpoints": [{"name": "b", "address": "127.0.0.1:9002"}]});
        fn put(
            base: &Config,
            section: &'static str,
            name: &str,
            value: Option<&serde_json::Value>,
        ) -> Result<Config, ConfigErrors> {
            with_entries(
                base,
                &[Entry {
                    section,
                    name,
                    value,
                }],
            )
        }
        let c = put(&base, "pools", "q", Some(&q)).unwrap();
        assert_eq!(c.pools["q"].endpoints[0].socket_addr.port(), 9002);
        let p = &c.pools["p"].endpoints[0];
        assert_eq!(p.socket_addr, "10.9.8.7:9001".parse().unwrap(), "as it was");
        assert_eq!(
            c.pools["t"].endpoints[0].socket_addr,
            base.pools["t"].endpoints[0].socket_addr
        );
        let tls = c.pools["t"].tls.as_ref().unwrap();
        assert_eq!(tls.loaded.ca_fingerprint, fingerprint);
        assert!(tls.loaded.ca.is_some());
        // Deleting an unrelated object: the same.
        let c = put(&c, "monitors", "m2", Some(&json!({"type": "tcp"}))).unwrap();
        let c = put(&c, "monitors", "m2", None).unwrap();
        assert_eq!(
            c.pools["p"].endpoints[0].socket_addr,
            "10.9.8.7:9001".parse().unwrap()
        );

        // The entry put is checked as the file would be: its host names
        // resolved, its files read.
        let r = json!({"endpoints": [{"name": "b", "address": "tether-test.invalid:9002"}]});
        let all = messages(&put(&base, "pools", "r", Some(&r)).unwrap_err()).join("\n");
        assert!(
            all.contains("tether.pools.r.endpoints[0].address: cannot resolve"),
            "{all}"
        );
        let t = entry_value(&base, "pools", "t").unwrap();
        let all = messages(&put(&base, "pools", "t", Some(&t)).unwrap_err()).join("\n");
        assert!(all.contains("tether.pools.t.tls.ca_path"), "{all}");
        assert!(!all.contains("state_file"), "{all}");
    }
}
