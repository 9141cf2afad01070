//! What `tether export` shows: the configuration file with the run-time
//! changes its state file records laid over, as a start restores them —
//! objects put at run time, then endpoints' `enabled`/`weight` and load
//! balancers' settings. Reads the state file; changes nothing.

use super::records::{lb_json, set_field, Records};
use super::state_file::{Read, StateFile};
use crate::config::Config;

/// `tether export`: the file's configuration with the run-time changes its
/// state file records laid over, as a start restores them: objects put at
/// run time, then endpoints' enabled/weight and load balancers' settings.
pub fn in_force(file: Config) -> (Config, Vec<String>) {
    let Some(path) = file.state_file.clone() else {
        return (file, Vec::new());
    };
    match StateFile::new(&path).read(&file) {
        Ok(Read::Records { records, .. }) => {
            let (kept, mut effective, lines) = super::objects::rebase_all(&file, &records);
            overlay_records(&mut effective, &kept);
            (effective, lines)
        }
        Ok(Read::Missing) => (file, Vec::new()),
        Err(e) => (
            file,
            vec![format!(
                "state file {}: {e}; the configuration file alone is exported",
                path.display()
            )],
        ),
    }
}

/// Endpoints' `enabled`/`weight` and load balancers' fields as recorded.
fn overlay_records(config: &mut Config, records: &Records) {
    for (pool, endpoints) in &records.endpoints {
        let Some(p) = config.pools.get_mut(pool) else {
            continue;
        };
        for (name, r) in endpoints {
            if let Some(e) = p.endpoints.iter_mut().find(|e| e.name == *name) {
                if let Some(f) = &r.enabled {
                    e.enabled = f.value;
                }
                if let Some(f) = &r.weight {
                    e.weight = f.value;
                }
            }
        }
    }
    for (name, fields) in &records.load_balancers {
        let Some(lb) = config.load_balancers.get(name) else {
            continue;
        };
        let mut json = lb_json(lb);
        for (path, f) in fields {
            set_field(&mut json, path, f.value.clone());
        }
        let Ok(value) = serde_yaml::to_value(&json) else {
            continue;
        };
        let at = format!("tether.load_balancers.{name}");
        if let Ok(patched) =
            crate::config::load_balancer_from_value(name, &value, &config.pools, &at)
        {
            config.load_balancers.insert(name.clone(), patched);
        }
    }
}
