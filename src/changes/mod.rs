//! The one owner of run-time changes. Every source of a change — the admin
//! API, the state file at start, and later a reload or a cluster peer —
//! hands [`Changes`] typed [`Change`]s. Under one lock it validates them
//! against the live [`State`] and the file's configuration, writes the
//! resulting [`Records`] to the state file, and only then applies them to
//! the state the request path reads. A change that cannot be made durable
//! is refused and changes nothing. [`State`] knows nothing of this module.
//!
//! - [`records`]: what the state file holds (pure).
//! - [`state_file`]: reading and writing it (I/O).

pub mod patch;
mod plan;
pub mod records;
pub mod state_file;

use std::collections::HashMap;
use std::sync::Arc;

use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::affinity::cookie::CookieKeys;
use crate::clock::Now;
use crate::config::Config;
use crate::state::live::{successor, Live};
use crate::state::{NotFound, State};
pub use patch::LbPatch;
pub use plan::MAX_DRAIN_START_AHEAD_MS;
use plan::{given_way, lay_over, Effect, Plan, Planner, Touched};
use records::Records;
use state_file::{Read, StateFile};

/// One run-time change, as any source states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Disabling starts the endpoint's drain; enabling ends it.
    SetEndpointEnabled {
        pool: String,
        endpoint: String,
        enabled: bool,
        /// When the drain started (unix ms), for a disable that happened
        /// elsewhere (a cluster peer): the drain then ends at the same instant
        /// on every replica. `None`: it starts now (or keeps its start).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain_started_unix_ms: Option<u64>,
    },
    /// 0.0 ..= 1.0; new sessions only.
    SetEndpointWeight {
        pool: String,
        endpoint: String,
        weight: f64,
    },
    /// Load balancer keys as in the file, typed ([`LbPatch`]);
    /// `session_affinity_attributes` is merged key by key; a new
    /// `session_affinity` without a `session_affinity_ttl` takes the new
    /// type's default TTL. In JSON, `fields` is the map of the keys it sets.
    PatchLoadBalancer {
        load_balancer: String,
        fields: LbPatch,
    },
    /// Rackspace's session persistence.
    SetSessionPersistence {
        load_balancer: String,
        persistence: Persistence,
    },
}

/// Rackspace's `persistenceType`, and turning it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Persistence {
    /// `session_affinity: cookie`.
    HttpCookie,
    /// `session_affinity: source_ip`.
    SourceIp,
    /// `session_affinity: none`; refused when affinity is already off.
    Off,
}

/// Why a change was refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeError {
    NotFound(NotFound),
    /// One message per problem, each naming its field.
    Invalid(Vec<String>),
    /// `Persistence::Off` on a load balancer without affinity.
    AlreadyOff {
        load_balancer: String,
    },
    /// The state file could not be written.
    NotDurable(String),
}

impl From<NotFound> for ChangeError {
    fn from(e: NotFound) -> Self {
        ChangeError::NotFound(e)
    }
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::NotFound(e) => e.fmt(f),
            ChangeError::Invalid(problems) => f.write_str(&problems.join("; ")),
            ChangeError::AlreadyOff { load_balancer } => write!(
                f,
                "session persistence is already disabled on load balancer {load_balancer:?}"
            ),
            ChangeError::NotDurable(why) => write!(f, "the change was not applied: {why}"),
        }
    }
}

/// Told of every batch applied on this replica's behalf (never of one that
/// came from the cluster), with what the batch left in force, normalised:
/// see [`Changes::set_publisher`]. Called under the lock that orders
/// changes, so it must not block.
pub type Publisher = Box<dyn Fn(&[Change]) + Send + Sync>;

/// The source name of changes that came from a cluster peer.
pub const CLUSTER: &str = "cluster";

/// The owner of run-time changes: the live state, the file's configuration
/// (the baseline every record is kept against), the optional state file,
/// and the one lock that orders changes.
pub struct Changes {
    live: Arc<Live>,
    file: Option<StateFile>,
    inner: parking_lot::Mutex<Inner>,
    publisher: std::sync::OnceLock<Publisher>,
}

/// What the lock guards.
struct Inner {
    baseline: Config,
    records: Records,
}

impl Changes {
    /// `baseline` is the configuration file as loaded; the live state was built from it.
    pub fn new(live: Arc<Live>, baseline: Config) -> Self {
        let file = baseline.state_file.as_deref().map(StateFile::new);
        Changes {
            live,
            file,
            inner: parking_lot::Mutex::new(Inner {
                baseline,
                records: Records::default(),
            }),
            publisher: std::sync::OnceLock::new(),
        }
    }

    /// Sets the one publisher (the cluster link); later calls are ignored.
    pub fn set_publisher(&self, publisher: Publisher) {
        if self.publisher.set(publisher).is_err() {
            warn!("a publisher of run-time changes was already set");
        }
    }

    /// Everything in force that differs from the configuration file,
    /// normalised as for the publisher: what a replica offers the cluster
    /// when it (re)connects, for the targets the cluster has no value of.
    pub fn snapshot(&self) -> Vec<Change> {
        let inner = self.inner.lock();
        let state = self.live.load();
        Planner {
            state: &state,
            baseline: &inner.baseline,
        }
        .in_force()
    }

    /// The state the request path reads now.
    pub fn state(&self) -> Arc<State> {
        self.live.load()
    }

    /// The records in force (what the state file holds).
    pub fn records(&self) -> Records {
        self.inner.lock().records.clone()
    }

    /// Applies `batch` in order, all or nothing: validated, written to the
    /// state file, then applied to the state, then handed (normalised) to
    /// the publisher. `source` names who asked, for the log. Returns what
    /// changed (empty: nothing did).
    pub fn apply(
        &self,
        source: &str,
        batch: &[Change],
        now: Now,
    ) -> Result<Vec<String>, ChangeError> {
        self.apply_batch(source, batch, now, true)
    }

    /// As [`apply`](Self::apply) for a batch that came from a cluster peer
    /// (source [`CLUSTER`]): never published again, so changes do not loop.
    pub fn apply_from_cluster(
        &self,
        batch: &[Change],
        now: Now,
    ) -> Result<Vec<String>, ChangeError> {
        self.apply_batch(CLUSTER, batch, now, false)
    }

    // The owner of changes: the one place (with `plan::lay_over`) that may
    // call the state's setters (clippy.toml `disallowed-methods`).
    #[allow(clippy::disallowed_methods)]
    fn apply_batch(
        &self,
        source: &str,
        batch: &[Change],
        now: Now,
        publish: bool,
    ) -> Result<Vec<String>, ChangeError> {
        let mut inner = self.inner.lock();
        let state = self.live.load();
        let planner = Planner {
            state: &state,
            baseline: &inner.baseline,
        };
        let mut plan = Plan {
            effects: Vec::new(),
            records: inner.records.clone(),
            lbs: HashMap::new(),
            described: Vec::new(),
        };
        for change in batch {
            planner.plan(change, &mut plan, now)?;
        }
        if plan.records != inner.records {
            if let Some(file) = &self.file {
                if let Err(e) = file.write(&plan.records) {
                    warn!("{source}: change refused, it cannot be made durable: {e}");
                    return Err(ChangeError::NotDurable(e));
                }
            }
        }
        let mut touched = Touched::default();
        for effect in plan.effects {
            match effect {
                Effect::Enabled {
                    at,
                    enabled: false,
                    since: Some(since),
                } => {
                    state.endpoint(at).restore_disabled(since);
                    touched.enabled(at);
                }
                Effect::Enabled { at, enabled, .. } => {
                    state.set_endpoint_enabled(at, enabled, now.ms);
                    touched.enabled(at);
                }
                Effect::Weight { at, weight } => {
                    state.set_endpoint_weight(at, weight);
                    touched.weight(at);
                }
                Effect::LoadBalancer(lb) => {
                    touched.lb(&lb.name);
                    state.replace_load_balancer(lb)?;
                }
            }
        }
        if publish {
            if let Some(publisher) = self.publisher.get() {
                publisher(&planner.normalised(&touched));
            }
        }
        inner.records = plan.records;
        if plan.described.is_empty() && source != CLUSTER {
            info!("{source}: no change");
        }
        for line in &plan.described {
            info!("{source}: {line}");
        }
        Ok(plan.described)
    }
    /// At start: reads the state file, keeps the records the configuration
    /// file has not overtaken since (logging each dropped one), applies
    /// them, and rewrites the file when that changed what it holds. A
    /// broken file is reported and the configuration file is used as is.
    pub fn restore(&self, now: Now) {
        let Some(file) = &self.file else { return };
        let mut inner = self.inner.lock();
        let shown = file.path().display();
        let (read, old_format) = match file.read(&inner.baseline) {
            Ok(Read::Missing) => (Records::default(), false),
            Ok(Read::Records {
                records,
                old_format,
            }) => (records, old_format),
            Err(e) => {
                warn!("state file {shown}: {e}; starting from the configuration file");
                return;
            }
        };
        let (kept, dropped) = read.rebase(&inner.baseline);
        for line in &dropped {
            info!("state file {shown}: {line}");
        }
        let kept = lay_over(&self.live.load(), &inner.baseline, kept, now);
        if old_format || kept != read {
            if let Err(e) = file.write(&kept) {
                warn!("{e}");
            }
        }
        inner.records = kept;
    }

    /// A reload (SIGHUP): `config` becomes the baseline. The successor state
    /// keeps what was learnt about the endpoints that stay; every run-time
    /// change whose field the file has not changed since stays in force
    /// (the file's edit wins otherwise, one log line each); then the new
    /// state is swapped in. Returns what the log should say.
    pub fn reload(&self, config: Config, keys: CookieKeys, now: Now) -> Vec<String> {
        let mut inner = self.inner.lock();
        let old = self.live.load();
        let next = successor(&old, &config, keys, now.ms);
        let (kept, mut said) = inner.records.rebase(&config);
        let kept = lay_over(&next, &config, kept, now);
        if kept != inner.records {
            if let Some(file) = &self.file {
                if let Err(e) = file.write(&kept) {
                    said.push(format!(
                        "{e}; the dropped records stay in the file until the next change"
                    ));
                }
            }
        }
        // With a cluster, the fields whose run-time record gave way to the
        // file are published as the file now has them, so that the other
        // replicas (and Redis) follow the edit instead of restoring the old
        // run-time value at the next resync.
        if let Some(publisher) = self.publisher.get() {
            let touched = given_way(&inner.records, &kept, &next);
            if !touched.is_empty() {
                let planner = Planner {
                    state: &next,
                    baseline: &config,
                };
                publisher(&planner.normalised(&touched));
            }
        }
        self.live.replace(next);
        inner.records = kept;
        inner.baseline = config;
        said
    }
}

#[cfg(test)]
mod tests;

/// Unit tests outside `changes` set an endpoint's enabled flag or weight
/// through here: the state's setters are disallowed outside `changes`
/// (clippy.toml), and this door exists in test builds only.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) mod test_door {
    use crate::state::{Pick, State};

    pub(crate) fn set_endpoint_enabled(state: &State, at: Pick, enabled: bool, now_ms: u64) {
        state.set_endpoint_enabled(at, enabled, now_ms);
    }

    pub(crate) fn set_endpoint_weight(state: &State, at: Pick, weight: f64) {
        state.set_endpoint_weight(at, weight);
    }
}
