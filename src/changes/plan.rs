//! What a batch of changes, or a set of records, does to a state: decided
//! before anything is written ([`Planner`]), then applied by the owner of
//! changes ([`super::Changes`]). Pure functions of the state and the file's
//! configuration they are given.

use std::collections::HashMap;

use log::{info, warn};
use serde_json::Value as Json;

use super::records::{changed_fields, field, lb_json, Records};
use super::{Change, ChangeError, LbPatch, Persistence};
use crate::clock::Now;
use crate::config::{
    self, load_balancer_from_value, runtime_fields, Config, SessionAffinity, ATTRIBUTES,
};
use crate::state::{NotFound, Pick, State};

/// How far in the future a drain's given start (a cluster peer's wall
/// clock) may be: clocks of replicas differ a little; a start later than
/// this is refused, so that no drain can be made to never end.
pub const MAX_DRAIN_START_AHEAD_MS: u64 = 60_000;

/// What applying a change does to the state, decided before anything is
/// written.
#[derive(Debug)]
pub(super) enum Effect {
    /// `since`: the drain's start (monotonic ms) when the change gave one.
    Enabled {
        at: Pick,
        enabled: bool,
        since: Option<u64>,
    },
    Weight {
        at: Pick,
        weight: f64,
    },
    LoadBalancer(config::LoadBalancer),
}

/// A batch being planned: its effects, the records after it, and what it
/// changed, for the log.
pub(super) struct Plan {
    pub(super) effects: Vec<Effect>,
    pub(super) records: Records,
    /// Load balancers as the batch leaves them so far.
    pub(super) lbs: HashMap<String, config::LoadBalancer>,
    pub(super) described: Vec<String>,
}

/// The targets that had a record in `before` and lost it in `after`.
pub(super) fn given_way(before: &Records, after: &Records, state: &State) -> Touched {
    let mut touched = Touched::default();
    for (pool, endpoints) in &before.endpoints {
        for (name, record) in endpoints {
            let Ok(at) = state.find_endpoint(pool, name) else {
                continue;
            };
            let now = after.endpoint(pool, name);
            if record.enabled.is_some() && now.is_none_or(|r| r.enabled.is_none()) {
                touched.enabled(at);
            }
            if record.weight.is_some() && now.is_none_or(|r| r.weight.is_none()) {
                touched.weight(at);
            }
        }
    }
    for (lb, fields) in &before.load_balancers {
        let kept = after.load_balancers.get(lb);
        if fields
            .keys()
            .any(|f| kept.is_none_or(|k| !k.contains_key(f)))
        {
            touched.lb(lb);
        }
    }
    touched
}

/// Lays `records` over `state` (built from `baseline`): endpoint changes,
/// drains with their start, load balancer fields. Records of a load
/// balancer whose settings no longer validate are dropped with a warning;
/// an endpoint the file disables gets its drain's start recorded. Returns
/// the records in force. Applies them: one of the owner's two callers of the
/// state's setters (clippy.toml `disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub(super) fn lay_over(state: &State, baseline: &Config, mut kept: Records, now: Now) -> Records {
    let now_unix_ms = now.unix_secs.saturating_mul(1000);
    for (pool, endpoints) in &kept.endpoints {
        for (name, record) in endpoints {
            let Ok(at) = state.find_endpoint(pool, name) else {
                continue;
            };
            if let Some(weight) = &record.weight {
                state.set_endpoint_weight(at, weight.value + 0.0);
                info!(
                    "state file: pool {pool} endpoint {name}: weight {}",
                    weight.value
                );
            }
            if record.enabled.as_ref().is_some_and(|e| e.value) {
                state.set_endpoint_enabled(at, true, now.ms);
                info!("state file: pool {pool} endpoint {name}: enabled");
            } else if let Some(t) = record.disabled_at_unix_ms {
                let ago = now_unix_ms.saturating_sub(t);
                state
                    .endpoint(at)
                    .restore_disabled(now.ms.saturating_sub(ago));
                info!(
                    "state file: pool {pool} endpoint {name}: disabled {} s ago",
                    ago / 1000
                );
            }
        }
    }
    // An endpoint the file disables drains from the first start that
    // saw it disabled; that start is kept for later starts.
    for (pool, p) in &baseline.pools {
        for e in p.endpoints.iter().filter(|e| !e.enabled) {
            let known = kept
                .endpoint(pool, &e.name)
                .is_some_and(|r| r.disabled_at_unix_ms.is_some() || r.enabled.is_some());
            if !known {
                kept.set_endpoint_enabled(pool, &e.name, false, false, Some(now_unix_ms));
            }
        }
    }
    let names: Vec<String> = kept.load_balancers.keys().cloned().collect();
    for name in names {
        let Some(file_lb) = baseline.load_balancers.get(&name) else {
            continue;
        };
        let value = kept.overlay_lb(&name, &lb_json(file_lb));
        let restored = serde_yaml::to_value(&value)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                load_balancer_from_value(&name, &v, &baseline.pools, "").map_err(|e| e.to_string())
            })
            .and_then(|lb| state.replace_load_balancer(lb).map_err(|e| e.to_string()));
        match restored {
            Ok(()) => info!("state file: load balancer {name}: run-time settings restored"),
            Err(e) => {
                warn!("load balancer {name}: its run-time settings no longer validate ({e}); the configuration file's are used");
                kept.drop_lb(&name);
            }
        }
    }
    kept
}

/// Decides what a change does, against one state and its baseline.
pub(super) struct Planner<'a> {
    pub(super) state: &'a State,
    pub(super) baseline: &'a Config,
}

impl Planner<'_> {
    pub(super) fn plan(
        &self,
        change: &Change,
        plan: &mut Plan,
        now: Now,
    ) -> Result<(), ChangeError> {
        match change {
            Change::SetEndpointEnabled {
                pool,
                endpoint,
                enabled,
                drain_started_unix_ms,
            } => {
                let at = self.state.find_endpoint(pool, endpoint)?;
                let e = self.state.endpoint(at);
                let was = plan
                    .effects
                    .iter()
                    .rev()
                    .find_map(|fx| match fx {
                        Effect::Enabled { at: a, enabled, .. } if *a == at => Some(*enabled),
                        _ => None,
                    })
                    .unwrap_or_else(|| e.enabled());
                let now_unix_ms = now.unix_secs.saturating_mul(1000);
                let given = drain_started_unix_ms.filter(|_| !enabled);
                if let Some(t) = given {
                    if t > now_unix_ms.saturating_add(MAX_DRAIN_START_AHEAD_MS) {
                        return Err(ChangeError::Invalid(vec![format!(
                            "drain_started_unix_ms: must not be more than {} s in the future, got {t} (now {now_unix_ms})",
                            MAX_DRAIN_START_AHEAD_MS / 1000
                        )]));
                    }
                }
                let disabled_at = match (was, enabled) {
                    (_, true) => None,
                    _ if given.is_some() => given,
                    (true, false) => Some(now_unix_ms),
                    // Already disabled: its drain keeps its start.
                    (false, false) => plan
                        .records
                        .endpoint(pool, endpoint)
                        .and_then(|r| r.disabled_at_unix_ms)
                        .or_else(|| {
                            let since = e.disabled_since()?;
                            Some(now_unix_ms.saturating_sub(now.ms.saturating_sub(since)))
                        }),
                };
                let file = self.file_endpoint(pool, endpoint).is_none_or(|f| f.enabled);
                plan.records
                    .set_endpoint_enabled(pool, endpoint, *enabled, file, disabled_at);
                if was != *enabled {
                    plan.described.push(format!(
                        "pool {pool} endpoint {endpoint}: enabled {was} -> {enabled}"
                    ));
                }
                plan.effects.push(Effect::Enabled {
                    at,
                    enabled: *enabled,
                    since: given.map(|t| self.state.clock.monotonic_at_unix_ms(t)),
                });
            }
            Change::SetEndpointWeight {
                pool,
                endpoint,
                weight,
            } => {
                // -0 is 0: stored, shown and written as 0.
                let weight = &(*weight + 0.0);
                if !(0.0..=1.0).contains(weight) {
                    return Err(ChangeError::Invalid(vec![format!(
                        "weight: must be between 0 and 1, got {weight}"
                    )]));
                }
                let at = self.state.find_endpoint(pool, endpoint)?;
                let was = plan
                    .effects
                    .iter()
                    .rev()
                    .find_map(|fx| match fx {
                        Effect::Weight { at: a, weight } if *a == at => Some(*weight),
                        _ => None,
                    })
                    .unwrap_or_else(|| self.state.endpoint(at).weight());
                let file = self.file_endpoint(pool, endpoint).map_or(1.0, |f| f.weight);
                plan.records
                    .set_endpoint_weight(pool, endpoint, *weight, file);
                if was != *weight {
                    plan.described.push(format!(
                        "pool {pool} endpoint {endpoint}: weight {was} -> {weight}"
                    ));
                    plan.effects.push(Effect::Weight {
                        at,
                        weight: *weight,
                    });
                }
            }
            Change::PatchLoadBalancer {
                load_balancer,
                fields,
            } => {
                let current = self.current_lb(load_balancer, plan)?;
                let new = self.patched(&current, fields)?;
                self.plan_lb(current, new, plan);
            }
            Change::SetSessionPersistence {
                load_balancer,
                persistence,
            } => {
                let current = self.current_lb(load_balancer, plan)?;
                let affinity = match persistence {
                    Persistence::HttpCookie => SessionAffinity::Cookie,
                    Persistence::SourceIp => SessionAffinity::SourceIp,
                    Persistence::Off if current.session_affinity == SessionAffinity::None => {
                        return Err(ChangeError::AlreadyOff {
                            load_balancer: current.name,
                        });
                    }
                    Persistence::Off => SessionAffinity::None,
                };
                let patch = LbPatch {
                    session_affinity: Some(affinity),
                    ..LbPatch::default()
                };
                let new = self.patched(&current, &patch)?;
                self.plan_lb(current, new, plan);
            }
            // Planned before the rest of the batch, by the owner of changes.
            Change::PutObject { .. } | Change::DeleteObject { .. } => {}
        }
        Ok(())
    }

    /// What `touched` now holds, as changes any replica can apply to reach
    /// the same state: an endpoint's enabled flag with its drain's start
    /// (unix ms), its weight, a load balancer's every run-time key.
    pub(super) fn normalised(&self, touched: &Touched) -> Vec<Change> {
        let mut out = Vec::new();
        for &at in &touched.enabled {
            out.push(self.enabled_change(at));
        }
        for &at in &touched.weight {
            out.push(self.weight_change(at));
        }
        let lbs = self.state.load_balancers();
        for name in &touched.lbs {
            if let Some(lb) = lbs.named(name) {
                out.push(lb_change(&lb.conf));
            }
        }
        out
    }

    fn enabled_change(&self, at: Pick) -> Change {
        let e = self.state.endpoint(at);
        Change::SetEndpointEnabled {
            pool: self.state.pools[at.pool()].name().to_string(),
            endpoint: e.name().to_string(),
            enabled: e.enabled(),
            drain_started_unix_ms: e
                .disabled_since()
                .map(|since| self.state.clock.unix_ms_at_monotonic(since)),
        }
    }

    fn weight_change(&self, at: Pick) -> Change {
        let e = self.state.endpoint(at);
        Change::SetEndpointWeight {
            pool: self.state.pools[at.pool()].name().to_string(),
            endpoint: e.name().to_string(),
            weight: e.weight(),
        }
    }

    /// Everything in force that differs from the configuration file,
    /// normalised as for the publisher.
    pub(super) fn in_force(&self) -> Vec<Change> {
        let mut out = Vec::new();
        for (p, pool) in self.state.pools.iter().enumerate() {
            for (i, e) in pool.endpoints.iter().enumerate() {
                let Some(at) = self.state.pick(p, i) else {
                    continue;
                };
                if e.enabled() != e.conf.enabled || e.disabled_since().is_some() {
                    out.push(self.enabled_change(at));
                }
                if e.weight() != e.conf.weight {
                    out.push(self.weight_change(at));
                }
            }
        }
        for lb in self.state.load_balancers().all() {
            if self.baseline.load_balancers.get(&lb.conf.name) != Some(&lb.conf) {
                out.push(lb_change(&lb.conf));
            }
        }
        out
    }

    fn file_endpoint(&self, pool: &str, endpoint: &str) -> Option<&config::Endpoint> {
        self.baseline
            .pools
            .get(pool)?
            .endpoints
            .iter()
            .find(|e| e.name == endpoint)
    }

    /// The load balancer as the batch has left it so far.
    fn current_lb(&self, name: &str, plan: &Plan) -> Result<config::LoadBalancer, ChangeError> {
        let name = name.to_ascii_lowercase();
        if let Some(lb) = plan.lbs.get(&name) {
            return Ok(lb.clone());
        }
        self.state
            .load_balancers()
            .named(&name)
            .map(|lb| lb.conf.clone())
            .ok_or(ChangeError::NotFound(NotFound::LoadBalancer(name)))
    }

    /// `current` with `patch` laid over, validated exactly as the file is
    /// (the rules between fields: a TTL's range for its type, pools that
    /// exist, ...).
    fn patched(
        &self,
        current: &config::LoadBalancer,
        patch: &LbPatch,
    ) -> Result<config::LoadBalancer, ChangeError> {
        let fields = patch.to_json();
        let mut value = lb_json(current);
        let Json::Object(map) = &mut value else {
            return Err(ChangeError::Invalid(vec![
                "internal error: settings are not a mapping".into(),
            ]));
        };
        for (key, v) in &fields {
            match (map.get_mut(key), v) {
                (Some(Json::Object(attrs)), Json::Object(changes)) if key == ATTRIBUTES => {
                    for (k, v) in changes {
                        attrs.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    map.insert(key.clone(), v.clone());
                }
            }
        }
        let ttl_given = fields.contains_key("session_affinity_ttl");
        if fields.contains_key("session_affinity") && !ttl_given {
            map.remove("session_affinity_ttl");
        }
        let yaml = serde_yaml::to_value(&value)
            .map_err(|e| ChangeError::Invalid(vec![format!("internal error: {e}")]))?;
        let mut new = load_balancer_from_value(&current.name, &yaml, &self.baseline.pools, "")
            .map_err(|e| ChangeError::Invalid(e.0.iter().map(|e| e.to_string()).collect()))?;
        if !ttl_given && new.session_affinity == current.session_affinity {
            new.session_affinity_ttl = current.session_affinity_ttl;
        }
        Ok(new)
    }

    /// Records every field `new` changes against the file's value, and
    /// plans the replacement.
    fn plan_lb(&self, current: config::LoadBalancer, new: config::LoadBalancer, plan: &mut Plan) {
        let (old_json, new_json) = (lb_json(&current), lb_json(&new));
        let file_json = self
            .baseline
            .load_balancers
            .get(&new.name)
            .map(lb_json)
            .unwrap_or(Json::Null);
        let fields: Vec<String> = runtime_fields().collect();
        let changed = changed_fields(&old_json, &new_json, fields.iter().map(String::as_str));
        if changed.is_empty() {
            return;
        }
        for (path, was, now) in changed {
            plan.records
                .set_lb_field(&new.name, &path, now.clone(), field(&file_json, &path));
            plan.described.push(format!(
                "load balancer {}: {path} {} -> {}",
                new.name,
                plain(&was),
                plain(&now)
            ));
        }
        plan.lbs.insert(new.name.clone(), new.clone());
        plan.effects.push(Effect::LoadBalancer(new));
    }
}

/// The targets a batch changed, in order, each once.
#[derive(Default)]
pub(super) struct Touched {
    pub(super) enabled: Vec<Pick>,
    pub(super) weight: Vec<Pick>,
    pub(super) lbs: Vec<String>,
}

impl Touched {
    pub(super) fn is_empty(&self) -> bool {
        self.enabled.is_empty() && self.weight.is_empty() && self.lbs.is_empty()
    }
    pub(super) fn enabled(&mut self, at: Pick) {
        if !self.enabled.contains(&at) {
            self.enabled.push(at);
        }
    }
    pub(super) fn weight(&mut self, at: Pick) {
        if !self.weight.contains(&at) {
            self.weight.push(at);
        }
    }
    pub(super) fn lb(&mut self, name: &str) {
        if !self.lbs.iter().any(|n| n == name) {
            self.lbs.push(name.to_string());
        }
    }
}

/// A load balancer's every run-time key as one patch (absent keys as
/// `null`), so that applying it anywhere gives these settings whatever the
/// order patches arrive in.
pub(super) fn lb_change(lb: &config::LoadBalancer) -> Change {
    Change::PatchLoadBalancer {
        load_balancer: lb.name.clone(),
        fields: LbPatch::whole(lb),
    }
}

/// Strings as they are, everything else as JSON (`null` for absent).
pub(super) fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
