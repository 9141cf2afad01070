//! The state file (SPEC 5, 7): run-time changes — endpoint disables (with
//! when their drain started), enables, weights, and load balancer settings
//! changed through the admin API — written atomically after every change and
//! applied at start, so they survive restarts and hot upgrades.
//!
//! The file records overrides of the configuration file: what differs from it
//! when the change is saved. At start each recorded value replaces the file's;
//! an entry that no longer fits the configuration (a removed endpoint, a load
//! balancer setting that no longer validates) is skipped with a warning, never
//! fatal. Delete the file to return to the configuration as written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::clock::Now;
use crate::config::{load_balancer_from_value, load_balancer_to_value, Config};
use crate::state::State;

const VERSION: u32 = 1;

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    version: u32,
    /// Pool → endpoint → what differs from the configuration file.
    #[serde(default)]
    endpoints: BTreeMap<String, BTreeMap<String, EndpointOverride>>,
    /// Load balancer → its whole settings, in the file's form, when they differ.
    #[serde(default)]
    load_balancers: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    /// Wall-clock time the endpoint was disabled (its drain's start), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_at_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<f64>,
}

/// Where the state goes and what the configuration file said.
pub struct Persist {
    path: PathBuf,
    baseline: Config,
    /// One writer at a time.
    writing: parking_lot::Mutex<()>,
}

impl Persist {
    pub fn new(path: &Path, config: &Config) -> Self {
        Persist {
            path: path.to_path_buf(),
            baseline: config.clone(),
            writing: parking_lot::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What differs from the configuration file now.
    fn snapshot(&self, state: &State, now: Now) -> Snapshot {
        let mut snapshot = Snapshot {
            version: VERSION,
            ..Snapshot::default()
        };
        let now_unix_ms = now.unix.saturating_mul(1000);
        for pool in &state.pools {
            let Some(file_pool) = self.baseline.pools.get(pool.name()) else {
                continue;
            };
            for (endpoint, file) in pool.endpoints.iter().zip(&file_pool.endpoints) {
                let mut o = EndpointOverride::default();
                if endpoint.enabled() != file.enabled {
                    o.enabled = Some(endpoint.enabled());
                }
                if let Some(since) = endpoint.disabled_since() {
                    // Kept whenever disabled: a drain's start must survive even
                    // when the file also says `enabled: false`.
                    let ago = now.ms.saturating_sub(since);
                    o.disabled_at_unix_ms = Some(now_unix_ms.saturating_sub(ago));
                }
                if endpoint.weight() != file.weight {
                    o.weight = Some(endpoint.weight());
                }
                if o != EndpointOverride::default() {
                    snapshot
                        .endpoints
                        .entry(pool.name().to_string())
                        .or_default()
                        .insert(endpoint.name().to_string(), o);
                }
            }
        }
        for lb in state.load_balancers().all() {
            if self.baseline.load_balancers.get(&lb.conf.name) != Some(&lb.conf) {
                let value = serde_json::to_value(load_balancer_to_value(&lb.conf))
                    .unwrap_or(serde_json::Value::Null);
                snapshot.load_balancers.insert(lb.conf.name.clone(), value);
            }
        }
        snapshot
    }

    /// Writes the current overrides atomically: a temporary file in the same
    /// directory, flushed to disk, then renamed over the old one.
    pub fn save(&self, state: &State) -> Result<(), String> {
        let _one_writer = self.writing.lock();
        let snapshot = self.snapshot(state, state.clock.now());
        let text = serde_json::to_string_pretty(&snapshot).map_err(|e| e.to_string())?;
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write state file {}: {e}", self.path.display())
        })
    }

    /// Applies the file's overrides to a fresh `state`. A missing file is a
    /// first start; an unreadable one is reported and ignored.
    pub fn restore(&self, state: &State) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!(
                    "state file {}: cannot read it ({e}); starting from the configuration",
                    self.path.display()
                );
                return;
            }
        };
        let snapshot: Snapshot = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "state file {}: not a Tether state file ({e}); starting from the configuration",
                    self.path.display()
                );
                return;
            }
        };
        if snapshot.version != VERSION {
            warn!(
                "state file {}: version {} is not {VERSION}; ignored",
                self.path.display(),
                snapshot.version
            );
            return;
        }
        self.apply(state, &snapshot, state.clock.now());
    }

    fn apply(&self, state: &State, snapshot: &Snapshot, now: Now) {
        let file = self.path.display();
        for (pool, endpoints) in &snapshot.endpoints {
            for (name, o) in endpoints {
                let Ok(at) = state.find_endpoint(pool, name) else {
                    warn!("state file {file}: pool {pool} endpoint {name} is not in the configuration; skipped");
                    continue;
                };
                let endpoint = state.endpoint(at);
                if let Some(weight) = o.weight {
                    if (0.0..=1.0).contains(&weight) {
                        state.set_endpoint_weight(at, weight);
                        info!("state file: pool {pool} endpoint {name}: weight {weight}");
                    } else {
                        warn!("state file {file}: pool {pool} endpoint {name}: weight {weight} is out of range; skipped");
                    }
                }
                let enabled = o.enabled.unwrap_or_else(|| endpoint.enabled());
                match (enabled, o.disabled_at_unix_ms) {
                    (true, _) => {
                        state.set_endpoint_enabled(at, true, now.ms);
                        if o.enabled == Some(true) {
                            info!("state file: pool {pool} endpoint {name}: enabled");
                        }
                    }
                    (false, at_ms) => {
                        let ago =
                            at_ms.map_or(0, |t| now.unix.saturating_mul(1000).saturating_sub(t));
                        endpoint.restore_disabled(now.ms.saturating_sub(ago));
                        info!(
                            "state file: pool {pool} endpoint {name}: disabled {} s ago",
                            ago / 1000
                        );
                    }
                }
            }
        }
        for (name, value) in &snapshot.load_balancers {
            let restored = serde_yaml::to_value(value)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    load_balancer_from_value(name, &v, &self.baseline.pools, "")
                        .map_err(|e| e.to_string())
                })
                .and_then(|lb| state.replace_load_balancer(lb).map_err(|e| e.to_string()));
            match restored {
                Ok(()) => info!("state file: load balancer {name}: settings restored"),
                Err(e) => warn!("state file {file}: load balancer {name}: {e}; skipped"),
            }
        }
    }
}

/// After a run-time change: writes the state file when one is configured.
pub fn save_after_change(state: &State) -> Result<(), String> {
    match &state.persist {
        Some(p) => p.save(state),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::config::{OriginSteering, SessionAffinity};
    use crate::fixtures::{config, pool};

    fn setup(dir: &Path) -> (Config, State) {
        let mut cfg = config(vec![pool("p", 3, OriginSteering::Random)], &["p"], None);
        cfg.state_file = Some(dir.join("state.json"));
        let mut state = State::new(&cfg, CookieKeys::random());
        state.persist = Some(Persist::new(&dir.join("state.json"), &cfg));
        (cfg, state)
    }

    #[test]
    fn nothing_changed_writes_an_empty_override_set() {
        let dir = tempfile::TempDir::new().unwrap();
        let (_, state) = setup(dir.path());
        save_after_change(&state).unwrap();
        let text = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
        let snapshot: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                version: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn changes_survive_a_restart_and_drains_keep_their_start() {
        let dir = tempfile::TempDir::new().unwrap();
        let (cfg, state) = setup(dir.path());
        let now = state.clock.now();
        let p1 = state.find_endpoint("p", "p-1").unwrap();
        let p2 = state.find_endpoint("p", "p-2").unwrap();
        // Disabled 30 s "ago" on the monotonic clock.
        state.set_endpoint_enabled(p1, false, now.ms - 30_000);
        state.set_endpoint_weight(p2, 0.25);
        let mut lb = state.load_balancers().named("*").unwrap().conf.clone();
        lb.session_affinity = SessionAffinity::SourceIp;
        lb.session_affinity_ttl = 600;
        state.replace_load_balancer(lb.clone()).unwrap();
        save_after_change(&state).unwrap();

        // A new process: same file config, then the state file.
        let (_, fresh) = setup(dir.path());
        fresh.persist.as_ref().unwrap().restore(&fresh);
        let e1 = fresh.endpoint(p1);
        assert!(!e1.enabled());
        let ago = fresh.clock.now().ms - e1.disabled_since().unwrap();
        assert!(
            (29_000..40_000).contains(&ago),
            "drain started {ago} ms ago"
        );
        assert_eq!(fresh.endpoint(p2).weight(), 0.25);
        assert_eq!(fresh.load_balancers().named("*").unwrap().conf, lb);
        assert_eq!(
            cfg.pools["p"].endpoints[2].weight, 1.0,
            "the file config is untouched"
        );
    }

    #[test]
    fn a_broken_or_stale_file_is_skipped_not_fatal() {
        let dir = tempfile::TempDir::new().unwrap();
        let (_, state) = setup(dir.path());
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        state.persist.as_ref().unwrap().restore(&state);
        std::fs::write(
            &path,
            r#"{"version": 1, "endpoints": {"p": {"gone": {"enabled": false}, "p-0": {"weight": 7}}},
                "load_balancers": {"*": {"default_pools": ["nope"]}}}"#,
        )
        .unwrap();
        state.persist.as_ref().unwrap().restore(&state);
        let p0 = state.find_endpoint("p", "p-0").unwrap();
        assert_eq!(
            state.endpoint(p0).weight(),
            1.0,
            "out-of-range weight skipped"
        );
        assert_eq!(
            state
                .load_balancers()
                .named("*")
                .unwrap()
                .conf
                .default_pools,
            vec!["p".to_string()],
            "an invalid load balancer is skipped"
        );
    }

    #[test]
    fn saving_is_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let (_, state) = setup(dir.path());
        for _ in 0..5 {
            save_after_change(&state).unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["state.json".to_string()]);
    }
}
