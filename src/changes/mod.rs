//! The one owner of run-time changes. Every source of a change — the admin
//! API, the state file at start, and later a reload or a cluster peer —
//! hands [`Changes`] typed [`Change`]s. Under one lock it validates them
//! against the live [`State`] and the file's configuration, writes the
//! resulting [`Records`] to the state file, and only then applies them to
//! the state the request path reads. A change that cannot be made durable
//! is refused and changes nothing. [`State`] knows nothing of this module.
//!
//! - [`records`]: what the state file holds (pure).
//! - [`objects`]: monitors, pools and load balancers put or deleted at run
//!   time, their IDs, and the configuration they make with the file's (pure).
//! - [`state_file`]: reading and writing it (I/O).
//!
//! The configuration every record is kept against (the *baseline*) is the
//! file's configuration with the objects put at run time laid over
//! ([`objects::effective`]); an object change builds the next state from it
//! with [`successor`], as a reload does.

pub mod objects;
pub mod overlay;
pub mod patch;
mod plan;
pub mod records;
pub mod state_file;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::{debug, info, warn};
use serde::{Deserialize, Serialize};

use crate::affinity::cookie::CookieKeys;
use crate::clock::Now;
use crate::config::objects::entry_value;
use crate::config::Config;
use crate::state::live::{successor, Live};
use crate::state::{NotFound, State};
pub use objects::{object_id, ObjectKind, ObjectView, Origin};
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
    /// Creates or replaces a monitor, pool or load balancer: `value` is its
    /// entry of `tether:` in the file's form (YAML as JSON; `name` is the
    /// key, a load balancer's lower-cased). The whole configuration it makes
    /// is read as the file is; a file object is kept as the keys that differ
    /// from the file's ([`objects`]). Takes effect at once (a new state, as a
    /// reload builds); run-time changes of fields it does not change stay.
    PutObject {
        kind: ObjectKind,
        name: String,
        value: serde_json::Value,
    },
    /// Deletes an object created at run time. Refused for an object the file
    /// defines ([`ChangeError::FileDefined`]) and for one still referenced
    /// ([`ChangeError::InUse`]).
    DeleteObject { kind: ObjectKind, name: String },
}

impl Change {
    /// Whether it puts or deletes an object (monitor, pool, load balancer).
    pub fn is_object(&self) -> bool {
        matches!(self, Change::PutObject { .. } | Change::DeleteObject { .. })
    }
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
    /// A delete of an object the configuration file defines (HTTP 409):
    /// `file` is the configuration file's path, when known.
    FileDefined {
        kind: ObjectKind,
        name: String,
        file: Option<PathBuf>,
    },
    /// A delete of an object others still refer to (HTTP 409): the
    /// reader's messages, each naming the referring key path.
    InUse {
        kind: ObjectKind,
        name: String,
        problems: Vec<String>,
    },
    /// A delete of an object that does not exist (HTTP 404).
    NoSuchObject {
        kind: ObjectKind,
        name: String,
    },
    /// With a cluster: an object whose change (its whole entry) is larger
    /// than the cluster carries, `bytes` of JSON over `limit`
    /// ([`Changes::set_shared_limit`]); it would stay on this replica only
    /// (HTTP 413).
    TooLarge {
        kind: ObjectKind,
        name: String,
        bytes: usize,
        limit: usize,
    },
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
            ChangeError::FileDefined { kind, name, file } => {
                let file = file
                    .as_ref()
                    .map_or("the configuration file".to_string(), |p| {
                        format!("the configuration file {}", p.display())
                    });
                write!(
                    f,
                    "{} {name:?} is defined in {file}: it can be changed at run time but not deleted; remove it from the file and reload",
                    kind.noun()
                )
            }
            ChangeError::InUse {
                kind,
                name,
                problems,
            } => write!(
                f,
                "{} {name:?} is still in use: {}",
                kind.noun(),
                problems.join("; ")
            ),
            ChangeError::NoSuchObject { kind, name } => {
                write!(f, "no {} named {name:?}", kind.noun())
            }
            ChangeError::TooLarge {
                kind,
                name,
                bytes,
                limit,
            } => write!(
                f,
                "{} {name:?} is too large to share with the other replicas of the cluster: {bytes} bytes as a change, at most {limit}; nothing was changed",
                kind.noun()
            ),
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
/// and the baseline (the file's with the objects put at run time laid over,
/// which every other record is kept against), the optional state file, and
/// the one lock that orders changes.
///
/// **Objects** (monitors, pools, load balancers; [`ObjectKind`]):
/// - read: [`objects`](Self::objects)`(kind)` lists every object of a kind in
///   force, the file's and the run-time ones, sorted by name;
///   [`object`](Self::object)`(kind, name)` and
///   [`object_by_id`](Self::object_by_id)`(kind, id)` find one. Each is an
///   [`ObjectView`]: `id` ([`object_id`]: 32 lower-case hex, SHA-256 of
///   `tether:<kind>:<name>`, stable across restarts and replicas), `name`,
///   `origin` ([`Origin::File`] or [`Origin::Runtime`]), `file` (the
///   configuration file's path for file objects, from
///   [`with_config_path`](Self::with_config_path)), `value` (the entry of
///   `tether:` in force as JSON, the model's canonical YAML form), and
///   `created_on_unix_ms` / `modified_on_unix_ms` (`None` for an object never
///   put at run time).
/// - write: [`apply`](Self::apply) with [`Change::PutObject`]`{kind, name,
///   value}` (create or replace with the whole entry) or
///   [`Change::DeleteObject`]`{kind, name}`. Errors:
///   [`ChangeError::Invalid`] (400: the reader's messages with key paths),
///   [`ChangeError::FileDefined`] (409: a delete of a file object, naming
///   the file), [`ChangeError::InUse`] (409: a delete leaving a reference
///   dangling, naming the referring key path), [`ChangeError::NoSuchObject`]
///   (404), [`ChangeError::NotDurable`] (500).
pub struct Changes {
    live: Arc<Live>,
    file: Option<StateFile>,
    /// The configuration file's path, named when a delete is refused.
    config_path: Option<PathBuf>,
    inner: parking_lot::Mutex<Inner>,
    publisher: std::sync::OnceLock<Publisher>,
    /// With a cluster: the longest JSON of one object change it carries.
    shared_limit: std::sync::OnceLock<usize>,
}

/// What the lock guards.
struct Inner {
    /// The configuration file's, as loaded.
    file: Config,
    /// `file` with the objects of `records` laid over: what every other
    /// record is kept against, and what the live state was built from.
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
            config_path: None,
            inner: parking_lot::Mutex::new(Inner {
                file: baseline.clone(),
                baseline,
                records: Records::default(),
            }),
            publisher: std::sync::OnceLock::new(),
            shared_limit: std::sync::OnceLock::new(),
        }
    }

    /// The configuration file's path, named when a delete of an object it
    /// defines is refused ([`ChangeError::FileDefined`]) and in
    /// [`ObjectView::file`].
    pub fn with_config_path(mut self, path: &Path) -> Self {
        self.config_path = Some(path.to_path_buf());
        self
    }

    /// The configuration file's path, when given.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Every object of `kind` in force — the file's and those created at run
    /// time — sorted by name, each with its ID, origin and value in force.
    pub fn objects(&self, kind: ObjectKind) -> Vec<ObjectView> {
        let inner = self.inner.lock();
        let state = self.live.load();
        let names: Vec<String> = match kind {
            ObjectKind::Monitor => inner.baseline.monitors.keys().cloned().collect(),
            ObjectKind::Pool => inner.baseline.pools.keys().cloned().collect(),
            ObjectKind::LoadBalancer => inner.baseline.load_balancers.keys().cloned().collect(),
        };
        names
            .iter()
            .filter_map(|name| self.view(&inner, &state, kind, name))
            .collect()
    }

    /// The object of `kind` named `name` (a load balancer's in any case).
    pub fn object(&self, kind: ObjectKind, name: &str) -> Option<ObjectView> {
        let inner = self.inner.lock();
        let state = self.live.load();
        self.view(&inner, &state, kind, &kind.normalise(name))
    }

    /// The object of `kind` whose [`object_id`] is `id`.
    pub fn object_by_id(&self, kind: ObjectKind, id: &str) -> Option<ObjectView> {
        self.objects(kind).into_iter().find(|o| o.id == id)
    }

    fn view(
        &self,
        inner: &Inner,
        state: &State,
        kind: ObjectKind,
        name: &str,
    ) -> Option<ObjectView> {
        let mut value = entry_value(&inner.baseline, kind.section(), name)?;
        match kind {
            ObjectKind::Monitor => {}
            ObjectKind::Pool => {
                // Its and its endpoints' enabled flags and weights as in force now.
                if let Some(i) = state.pool_index(name) {
                    value = serde_json::to_value(state.pools[i].conf_in_force()).unwrap_or(value);
                }
            }
            ObjectKind::LoadBalancer => {
                if let Some(lb) = state.load_balancers().named(name) {
                    value = serde_json::to_value(&lb.conf).unwrap_or(value);
                }
            }
        }
        let record = inner.records.objects.get(&kind).and_then(|o| o.get(name));
        let in_file = entry_value(&inner.file, kind.section(), name).is_some();
        Some(ObjectView {
            kind,
            id: object_id(kind, name),
            name: name.to_string(),
            origin: if in_file {
                Origin::File
            } else {
                Origin::Runtime
            },
            file: if in_file {
                self.config_path.clone()
            } else {
                None
            },
            value,
            created_on_unix_ms: record.map(|r| r.created_on_unix_ms),
            modified_on_unix_ms: record.map(|r| r.modified_on_unix_ms),
        })
    }

    /// Sets the one publisher (the cluster link); later calls are ignored.
    pub fn set_publisher(&self, publisher: Publisher) {
        if self.publisher.set(publisher).is_err() {
            warn!("a publisher of run-time changes was already set");
        }
    }

    /// With a cluster (its link sets it once): the longest JSON of one
    /// change the cluster carries. A put on this replica whose object, as
    /// published (its whole entry in force), is longer is refused with
    /// [`ChangeError::TooLarge`]: it could not reach the other replicas.
    pub fn set_shared_limit(&self, bytes: usize) {
        if self.shared_limit.set(bytes).is_err() {
            warn!("the cluster's limit of a shared change was already set");
        }
    }

    /// Everything in force that differs from the configuration file,
    /// normalised as for the publisher: what a replica offers the cluster
    /// when it (re)connects, for the targets the cluster has no value of.
    /// Objects put at run time come first, monitors, pools, then load
    /// balancers (each as its whole entry in force).
    pub fn snapshot(&self) -> Vec<Change> {
        let inner = self.inner.lock();
        let state = self.live.load();
        let mut out = Vec::new();
        for kind in ObjectKind::ALL {
            for name in inner
                .records
                .objects
                .get(&kind)
                .into_iter()
                .flat_map(|o| o.keys())
            {
                if let Some(value) = entry_value(&inner.baseline, kind.section(), name) {
                    out.push(Change::PutObject {
                        kind,
                        name: name.clone(),
                        value,
                    });
                }
            }
        }
        out.extend(
            Planner {
                state: &state,
                baseline: &inner.baseline,
            }
            .in_force(),
        );
        out
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
        let old = self.live.load();
        // Object changes first, in order: the configuration they make, and
        // the next state built from it (not yet in force).
        let objects_planned = self.plan_objects(&inner, batch, now, publish)?;
        let mut described = Vec::new();
        let mut records = inner.records.clone();
        let mut next = None;
        let mut next_baseline = None;
        let mut touched = Touched::default();
        let mut object_changes = Vec::new();
        if let Some((objects, effective, lines, affected)) = objects_planned {
            let state = successor(&old, &effective, old.keys.clone(), now.ms);
            records.objects = objects;
            let (kept, gave_way) = records.rebase_after(&effective, &records::Rebase::OBJECT);
            records = lay_over(&state, &effective, kept, now);
            described.extend(lines);
            described.extend(gave_way);
            for (kind, name) in affected {
                match entry_value(&effective, kind.section(), &name) {
                    Some(value) => {
                        object_changes.push(Change::PutObject {
                            kind,
                            name: name.clone(),
                            value,
                        });
                        // What a peer may hold of its fields from before.
                        match kind {
                            ObjectKind::Pool => {
                                for (p, pool) in state.pools.iter().enumerate() {
                                    if pool.name() != name {
                                        continue;
                                    }
                                    for i in 0..pool.endpoints.len() {
                                        if let Some(at) = state.pick(p, i) {
                                            touched.enabled(at);
                                            touched.weight(at);
                                        }
                                    }
                                }
                            }
                            ObjectKind::LoadBalancer => touched.lb(&name),
                            ObjectKind::Monitor => {}
                        }
                    }
                    None => object_changes.push(Change::DeleteObject { kind, name }),
                }
            }
            next = Some(state);
            next_baseline = Some(effective);
        }
        if let (true, Some(&limit)) = (publish, self.shared_limit.get()) {
            for change in &object_changes {
                let bytes = serde_json::to_string(change).map_or(usize::MAX, |j| j.len());
                if let (true, Change::PutObject { kind, name, .. }) = (bytes > limit, change) {
                    return Err(ChangeError::TooLarge {
                        kind: *kind,
                        name: name.clone(),
                        bytes,
                        limit,
                    });
                }
            }
        }
        let state: &State = next.as_ref().unwrap_or(&old);
        let baseline = next_baseline.as_ref().unwrap_or(&inner.baseline);
        let planner = Planner { state, baseline };
        let mut plan = Plan {
            effects: Vec::new(),
            records,
            lbs: HashMap::new(),
            described,
        };
        for change in batch.iter().filter(|c| !c.is_object()) {
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
                let mut normalised = object_changes;
                normalised.extend(planner.normalised(&touched));
                if !normalised.is_empty() {
                    publisher(&normalised);
                }
            }
        }
        inner.records = plan.records;
        let described = plan.described;
        if let Some(state) = next {
            self.live.replace(state);
        }
        if let Some(baseline) = next_baseline {
            inner.baseline = baseline;
        }
        if described.is_empty() && source != CLUSTER {
            info!("{source}: no change");
        }
        for line in &described {
            info!("{source}: {line}");
        }
        Ok(described)
    }

    /// The object records after the batch's object changes, the
    /// configuration they make, what they did (for the log) and the objects
    /// they changed; `None` when they change nothing. Each change is
    /// validated on the configuration the ones before it made (the reader's
    /// errors name key paths; a delete that leaves a reference dangling is
    /// [`ChangeError::InUse`]) and a put is kept in canonical form (the
    /// model's). `strict`: deleting what does not exist is an error (else,
    /// for a cluster peer's delete, nothing to do).
    #[allow(clippy::type_complexity)]
    fn plan_objects(
        &self,
        inner: &Inner,
        batch: &[Change],
        now: Now,
        strict: bool,
    ) -> Result<
        Option<(
            objects::ObjectRecords,
            Config,
            Vec<String>,
            Vec<(ObjectKind, String)>,
        )>,
        ChangeError,
    > {
        use crate::config::objects::{messages, with_entries, Entry};
        let now_unix_ms = now.unix_secs.saturating_mul(1000);
        let mut records = inner.records.objects.clone();
        let mut config: Option<Config> = None;
        let mut lines = Vec::new();
        let mut affected: Vec<(ObjectKind, String)> = Vec::new();
        for change in batch {
            let (kind, name, value) = match change {
                Change::PutObject { kind, name, value } => {
                    (*kind, kind.normalise(name), Some(value))
                }
                Change::DeleteObject { kind, name } => (*kind, kind.normalise(name), None),
                _ => continue,
            };
            let file = entry_value(&inner.file, kind.section(), &name);
            let current = config.as_ref().unwrap_or(&inner.baseline);
            let existed = entry_value(current, kind.section(), &name).is_some();
            if value.is_none() {
                if file.is_some() && !strict {
                    // A peer's delete of what this replica's file defines:
                    // stored deletes are replayed at every resync, and the
                    // file's object stays here either way.
                    debug!(
                        "cluster: a delete of {} {name}, which the configuration file defines here: nothing to do",
                        kind.noun()
                    );
                    continue;
                }
                if file.is_some() {
                    return Err(ChangeError::FileDefined {
                        kind,
                        name,
                        file: self.config_path.clone(),
                    });
                }
                if !existed {
                    if strict {
                        return Err(ChangeError::NoSuchObject { kind, name });
                    }
                    continue;
                }
            }
            if value.is_some_and(|v| !v.is_object()) {
                return Err(ChangeError::Invalid(vec![format!(
                    "tether.{}.{name}: expected a mapping of keys",
                    kind.section()
                )]));
            }
            let entry = Entry {
                section: kind.section(),
                name: &name,
                value,
            };
            let next = with_entries(current, &[entry]).map_err(|e| match value {
                Some(_) => ChangeError::Invalid(messages(&e)),
                None => ChangeError::InUse {
                    kind,
                    name: name.clone(),
                    problems: messages(&e),
                },
            })?;
            let changed = match entry_value(&next, kind.section(), &name) {
                Some(canonical) => objects::put(
                    &mut records,
                    kind,
                    &name,
                    canonical,
                    file.as_ref(),
                    now_unix_ms,
                ),
                None => objects::remove(&mut records, kind, &name),
            };
            config = Some(next);
            if changed {
                let what = match (value, existed) {
                    (None, _) => "deleted",
                    (Some(_), true) => "replaced",
                    (Some(_), false) => "created",
                };
                lines.push(format!("{} {name}: {what}", kind.noun()));
                if !affected.iter().any(|(k, n)| *k == kind && *n == name) {
                    affected.push((kind, name));
                }
            }
        }
        match config {
            Some(config) if records != inner.records.objects => {
                Ok(Some((records, config, lines, affected)))
            }
            _ => Ok(None),
        }
    }

    /// At start: reads the state file, keeps the records the configuration
    /// file has not overtaken since (logging each dropped one), applies
    /// them — objects first: the state is rebuilt from the configuration
    /// they make — and rewrites the file when that changed what it holds. A
    /// broken file is reported and the configuration file is used as is.
    pub fn restore(&self, now: Now) {
        let Some(file) = &self.file else { return };
        let mut inner = self.inner.lock();
        let shown = file.path().display();
        let (read, old_format) = match file.read(&inner.file) {
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
        let (kept, effective, dropped) = objects::rebase_all(&inner.file, &read);
        if !kept.objects.is_empty() {
            let old = self.live.load();
            self.live
                .replace(successor(&old, &effective, old.keys.clone(), now.ms));
            for kind in ObjectKind::ALL {
                for name in kept.objects.get(&kind).into_iter().flat_map(|o| o.keys()) {
                    info!("state file {shown}: {} {name} restored", kind.noun());
                }
            }
        }
        for line in &dropped {
            info!("state file {shown}: {line}");
        }
        let kept = lay_over(&self.live.load(), &effective, kept, now);
        if old_format || kept != read {
            if let Err(e) = file.write(&kept) {
                warn!("{e}");
            }
        }
        inner.records = kept;
        inner.baseline = effective;
    }

    /// A reload (SIGHUP): `config` becomes the file's configuration. The
    /// objects put at run time are rebased on it (a name or key the file now
    /// defines differently gives way to the file, one log line each), the
    /// successor state is built from the configuration they make and keeps
    /// what was learnt about the endpoints that stay; every run-time change
    /// whose field the file has not changed since stays in force (the file's
    /// edit wins otherwise, one log line each); then the new state is
    /// swapped in. Returns what the log should say.
    pub fn reload(&self, config: Config, keys: CookieKeys, now: Now) -> Vec<String> {
        let mut inner = self.inner.lock();
        let old = self.live.load();
        let (kept, effective, mut said) = objects::rebase_all(&config, &inner.records);
        let next = successor(&old, &effective, keys, now.ms);
        let kept = lay_over(&next, &effective, kept, now);
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
                    baseline: &effective,
                };
                publisher(&planner.normalised(&touched));
            }
        }
        self.live.replace(next);
        inner.records = kept;
        inner.file = config;
        inner.baseline = effective;
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
