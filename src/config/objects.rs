//! A configuration with objects (monitors, pools, load balancers) put or
//! removed at run time: the file's configuration written back to its
//! `tether:` YAML (the model serialises to exactly what the reader accepts),
//! the entries replaced, and the whole read again by the same reader and
//! checks as the file ([`super::load_str`]). Nothing is trusted that the
//! file would not be allowed to say.

use serde_yaml::{Mapping, Value};

use super::load::load_str;
use super::model::Config;
use super::read::{ConfigError, ConfigErrors};

/// One entry of a section of `tether:` to lay over a configuration.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// `monitors`, `pools` or `load_balancers`.
    pub section: &'static str,
    pub name: &'a str,
    /// The entry's value in the file's form (JSON); `None` removes it.
    pub value: Option<&'a serde_json::Value>,
}

/// `base` with `entries` laid over in order, validated as a whole file is.
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
    load_str(&text).map(|loaded| loaded.tether)
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
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "tether:
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
}
