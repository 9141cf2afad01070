//! The tests' configuration builder: it builds the configuration model's own
//! values (`tether::config`, `src/config/model.rs`) and writes them with the
//! model's serialisation, the one description of the file's keys (issue 18).
//! Field names are the YAML keys; a setting left at the reader's default is
//! not written, so a test states only what it means.
//!
//! ```ignore
//! let proxy = tether()
//!     .listener(free_port())
//!     .admin(free_port())
//!     .load_balancer("*", lb(["primary"]).affinity(Affinity::Cookie).drain(30))
//!     .pool("primary", pool([&web1, &web2]).monitor("fast"))
//!     .monitor("fast", Monitor::http("/health").interval(1.0))
//!     .start();
//! ```
//!
//! The chained methods are thin setters over the model's fields. Any field,
//! including one added to the model after this file was written, is set with
//! a closure over the model value: `tether().with(|t| t.max_sessions = 10)`,
//! `lb(["p"]).with(|lb| lb.always_use_https = true)`,
//! `pool([&a]).with(|p| p.origin_steering = OriginSteering::Hash)`,
//! `Monitor::tcp().with(|m| m.port = 80)` (each builder also dereferences to
//! its model value). So a key added to the model and its reader is usable
//! from every test with no edit here.
//!
//! A key is also set by name in any section (`lb(["p"]).set("new_key", 5)`,
//! [`SetKey`]): laid over what the model writes, it wins over it; that is how
//! a test writes what the model cannot hold (a spelling such as
//! `steering_policy: ""`, an unknown key the reader must refuse).
//!
//! A narrow typed layer is kept where tests give a few keys of a sub-object
//! as a struct literal (`ClientLimits { header_timeout: Some(1.0), ..default }`,
//! [`Attributes`], [`LoadShedding`], [`OutlierDetection`], [`FixedResponse`]):
//! each is laid over the model's default for that object (the reader's), so
//! its `None`s are the reader's defaults. A rule's [`Overrides`] stays typed
//! here because the model keeps them as written (a YAML mapping, validated
//! over the load balancer). [`Tls`] keeps string paths for its callers.
//!
//! Invalid files (unknown keys, wrong types) are written out literally by the
//! tests whose subject they are, and handed to [`check_section`] or
//! [`TetherProc::start`].

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::tether::config as model;
use ::tether::config::Spelled;
use serde::Serialize;
use serde_yaml::{Mapping, Value};

use super::tether::{check_section, TetherBuilder, TetherProc};
use super::upstream::Upstream;

/// `session_affinity`.
pub type Affinity = model::SessionAffinity;
/// `session_affinity_attributes.samesite`.
pub type SameSite = model::SameSite;
/// `session_affinity_attributes.secure`.
pub type Secure = model::Secure;
/// `origin_steering.policy`.
pub type OriginSteering = model::OriginSteering;
/// A monitor's `type`.
pub type Probe = model::MonitorType;

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------- keys set by name

/// Keys set by name ([`SetKey::set`]), each at its path below the section that
/// holds it; laid over the model's YAML when the file is written.
#[derive(Debug, Clone, Default)]
pub struct Extra(Vec<(Vec<Value>, String, Value)>);

impl Extra {
    /// These keys, `below` the given path (a map key or a list index each).
    fn nest(&mut self, below: &[Value], other: Extra) {
        for (path, key, value) in other.0 {
            let full = below.iter().cloned().chain(path).collect();
            self.0.push((full, key, value));
        }
    }

    /// Forgets `key` set by name in this section itself.
    fn forget(&mut self, key: &str) {
        self.0.retain(|(p, k, _)| !(p.is_empty() && k == key));
    }

    /// Forgets the keys at or below `path` (a section replaced).
    fn clear(&mut self, path: &[Value]) {
        self.0.retain(|(p, _, _)| !p.starts_with(path));
    }

    /// Lays each key over `root`, making the mappings its path needs.
    fn lay_over(&self, root: &mut Value) {
        for (path, key, value) in &self.0 {
            let mut at = &mut *root;
            for step in path {
                at = match step {
                    Value::Number(i) => &mut at[i.as_u64().unwrap_or(0) as usize],
                    _ => {
                        if !at.is_mapping() {
                            *at = Value::Mapping(Mapping::new());
                        }
                        let map = at.as_mapping_mut().expect("a mapping");
                        map.entry(step.clone())
                            .or_insert_with(|| Value::Mapping(Mapping::new()))
                    }
                };
            }
            if !at.is_mapping() {
                *at = Value::Mapping(Mapping::new());
            }
            at.as_mapping_mut()
                .expect("a mapping")
                .insert(Value::from(key.as_str()), value.clone());
        }
    }
}

fn key(k: &str) -> Value {
    Value::from(k)
}

/// Sets `key` to `value` in a builder's section, whatever the model holds.
pub trait SetKey: Sized {
    fn extra_keys(&mut self) -> &mut Extra;

    /// `key: value` in this section of the file; it wins over the model's own
    /// value for that key.
    fn set(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_yaml::to_value(value).expect("a YAML value");
        self.extra_keys()
            .0
            .push((Vec::new(), key.to_string(), value));
        self
    }
}

/// The builders over a model value: `Deref` to it, [`with`](Self::with) to
/// change any of its fields, and [`SetKey`].
macro_rules! over_the_model {
    ($($t:ident => $m:ty),*) => {$(
        impl Deref for $t {
            type Target = $m;
            fn deref(&self) -> &$m {
                &self.model
            }
        }
        impl DerefMut for $t {
            fn deref_mut(&mut self) -> &mut $m {
                &mut self.model
            }
        }
        impl $t {
            /// Any field of the model value, set by a closure.
            pub fn with(mut self, change: impl FnOnce(&mut $m)) -> Self {
                change(&mut self.model);
                self
            }
        }
        impl SetKey for $t {
            fn extra_keys(&mut self) -> &mut Extra {
                &mut self.extra
            }
        }
    )*};
}
over_the_model!(
    Tether => model::Config,
    LoadBalancer => model::LoadBalancer,
    Pool => model::Pool,
    Endpoint => model::Endpoint,
    Monitor => model::Monitor,
    Rule => model::Rule
);

// ---------------------------------------------------------------- the section

/// The `tether:` section: a [`model::Config`]. Build it with [`tether()`] and
/// the chained methods.
#[derive(Debug, Clone, Default)]
pub struct Tether {
    pub model: model::Config,
    /// Keys set by name anywhere in the section (see [`SetKey`]).
    pub extra: Extra,
}

/// The cluster key of the tests (32 bytes), unless a test says otherwise.
pub const CLUSTER_KEY: &[u8] = b"tether cluster test key, 32 b...";

/// Writes a cluster key file holding `key` into `dir`; returns its path.
pub fn cluster_key_file(dir: &Path, name: &str, key: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, key).expect("write the cluster key file");
    path.display().to_string()
}

/// An empty `tether:` section (the reader's defaults), to be filled by the
/// chained methods.
pub fn tether() -> Tether {
    Tether::default()
}

/// `tls: {cert_path, key_path}` of a listener; see [`Tls::self_signed`].
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_path: String,
    pub key_path: String,
}

impl Tls {
    /// A self-signed certificate for `localhost` and 127.0.0.1, written as
    /// `cert.pem` and `key.pem` into `dir`.
    pub fn self_signed(dir: &Path) -> Tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("generate a certificate");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert.pem");
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key.pem");
        Tls {
            cert_path: cert_path.display().to_string(),
            key_path: key_path.display().to_string(),
        }
    }
}

impl From<&Tls> for model::Tls {
    fn from(tls: &Tls) -> model::Tls {
        model::Tls::single(PathBuf::from(&tls.cert_path), PathBuf::from(&tls.key_path))
    }
}

impl From<&Tls> for model::CertificateFiles {
    fn from(tls: &Tls) -> model::CertificateFiles {
        model::CertificateFiles {
            cert_path: PathBuf::from(&tls.cert_path),
            key_path: PathBuf::from(&tls.key_path),
        }
    }
}

/// Some of `client_limits`, in seconds; `None`: the reader's default. Laid
/// over [`model::ClientLimits::default`] by [`Tether::client_limits`].
#[derive(Debug, Clone, Default)]
pub struct ClientLimits {
    pub max_connections: Option<u64>,
    pub header_timeout: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub max_request_header_bytes: Option<u64>,
    pub body_timeout: Option<f64>,
    pub min_body_rate: Option<u64>,
    /// Keys set by name (see [`SetKey`]).
    pub extra: Extra,
}

impl SetKey for ClientLimits {
    fn extra_keys(&mut self) -> &mut Extra {
        &mut self.extra
    }
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

impl Tether {
    /// A plain-HTTP listener on `127.0.0.1:<port>`.
    pub fn listener(self, port: u16) -> Tether {
        self.listener_at(&loopback(port))
    }

    /// A plain-HTTP listener on `address` as written.
    pub fn listener_at(mut self, address: &str) -> Tether {
        self.model.listeners.push(model::Listener {
            address: address.to_string(),
            tls: None,
        });
        self
    }

    /// An HTTPS listener on `127.0.0.1:<port>` with these certificate files.
    pub fn tls_listener(mut self, port: u16, tls: &Tls) -> Tether {
        self.model.listeners.push(model::Listener {
            address: loopback(port),
            tls: Some(tls.into()),
        });
        self
    }

    /// A TLS listener on `127.0.0.1:<port>` with `tls.certificates` (chosen
    /// by SNI, the first the default).
    pub fn sni_listener(mut self, port: u16, certificates: &[&Tls]) -> Tether {
        self.model.listeners.push(model::Listener {
            address: loopback(port),
            tls: Some(model::Tls::list(
                certificates.iter().map(|&tls| tls.into()).collect(),
            )),
        });
        self
    }

    /// The admin listener on `127.0.0.1:<port>`, no token.
    pub fn admin(self, port: u16) -> Tether {
        self.admin_at(&loopback(port), None)
    }

    /// The admin listener on `127.0.0.1:<port>`, every call needing the token in
    /// `token_file`.
    pub fn admin_with_token(self, port: u16, token_file: &Path) -> Tether {
        self.admin_at(&loopback(port), Some(token_file))
    }

    /// The admin listener on `address` as written (`0.0.0.0:<port>`), with the token in
    /// `token_file` if given.
    pub fn admin_at(mut self, address: &str, token_file: Option<&Path>) -> Tether {
        self.model.admin = Some(model::Admin {
            address: address.to_string(),
            token_file: token_file.map(Path::to_path_buf),
        });
        self
    }

    pub fn cookie_keys_file(mut self, path: &str) -> Tether {
        self.model.cookie_keys_file = Some(PathBuf::from(path));
        self
    }

    pub fn state_file(mut self, path: &Path) -> Tether {
        self.model.state_file = Some(path.to_path_buf());
        self
    }

    pub fn max_sessions(mut self, n: u64) -> Tether {
        self.model.max_sessions = n as usize;
        self
    }

    /// `decision_header: true`: responses carry `X-Tether-Decision`.
    pub fn decision_header(mut self) -> Tether {
        self.model.decision_header = true;
        self
    }

    /// `upstream_timeouts.read`, seconds.
    pub fn upstream_read_timeout(mut self, seconds: f64) -> Tether {
        self.model.upstream_timeouts.read = self::seconds(seconds);
        self
    }

    /// `access_log: { format }` (`text` or `json`; another spelling is
    /// written as given, for the reader to refuse).
    pub fn access_log(mut self, format: &str) -> Tether {
        match model::AccessLogFormat::SPELLINGS
            .iter()
            .find(|(name, _)| *name == format)
        {
            Some((_, f)) => self.model.access_log.format = *f,
            None => self
                .extra
                .0
                .push((vec![key("access_log")], "format".to_string(), key(format))),
        }
        self
    }

    /// `dns_refresh` in seconds.
    pub fn dns_refresh(mut self, seconds: f64) -> Tether {
        self.model.dns_refresh = self::seconds(seconds);
        self
    }

    /// `client_limits`: these over the reader's defaults.
    pub fn client_limits(mut self, limits: ClientLimits) -> Tether {
        let d = model::ClientLimits::default();
        self.model.client_limits = model::ClientLimits {
            max_connections: limits
                .max_connections
                .map_or(d.max_connections, |n| n as usize),
            header_timeout: limits.header_timeout.map_or(d.header_timeout, seconds),
            idle_timeout: limits.idle_timeout.map_or(d.idle_timeout, seconds),
            max_request_header_bytes: limits
                .max_request_header_bytes
                .map_or(d.max_request_header_bytes, |n| n as usize),
            body_timeout: limits.body_timeout.map_or(d.body_timeout, seconds),
            min_body_rate: limits.min_body_rate.unwrap_or(d.min_body_rate),
        };
        let at = [key("client_limits")];
        self.extra.clear(&at);
        self.extra.nest(&at, limits.extra);
        self
    }

    /// The load balancer serving `host` (`"*"`: every host no other entry names).
    pub fn load_balancer(mut self, host: &str, lb: LoadBalancer) -> Tether {
        let LoadBalancer { mut model, extra } = lb;
        model.name = host.to_string();
        self.model.load_balancers.insert(host.to_string(), model);
        let at = [key("load_balancers"), key(host)];
        self.extra.clear(&at);
        self.extra.nest(&at, extra);
        self
    }

    pub fn pool(mut self, name: &str, pool: Pool) -> Tether {
        let Pool { mut model, extra } = pool;
        model.name = name.to_string();
        self.model.pools.insert(name.to_string(), model);
        let at = [key("pools"), key(name)];
        self.extra.clear(&at);
        self.extra.nest(&at, extra);
        self
    }

    pub fn monitor(mut self, name: &str, monitor: Monitor) -> Tether {
        let Monitor { mut model, extra } = monitor;
        model.name = name.to_string();
        self.model.monitors.insert(name.to_string(), model);
        let at = [key("monitors"), key(name)];
        self.extra.clear(&at);
        self.extra.nest(&at, extra);
        self
    }

    /// `cluster: {redis_url, name, key_file}` (see [`cluster_key_file`]).
    pub fn cluster(mut self, redis_url: &str, name: &str, key_file: &str) -> Tether {
        self.model.cluster = Some(model::Cluster {
            redis_url: redis_url.to_string(),
            name: name.to_string(),
            key_file: PathBuf::from(key_file),
            ca_file: None,
            username: None,
            password_file: None,
        });
        self
    }

    /// The cluster's `ca_file` (after [`cluster`](Self::cluster)).
    pub fn cluster_ca_file(mut self, ca_file: &str) -> Tether {
        if let Some(c) = self.model.cluster.as_mut() {
            c.ca_file = Some(PathBuf::from(ca_file));
        }
        self
    }

    /// The cluster's `password_file` and optional `username` (after
    /// [`cluster`](Self::cluster)).
    pub fn cluster_password(mut self, password_file: &str, username: Option<&str>) -> Tether {
        if let Some(c) = self.model.cluster.as_mut() {
            c.password_file = Some(PathBuf::from(password_file));
            c.username = username.map(str::to_string);
        }
        self
    }

    /// The first listener's address (panics if there is none).
    pub fn listen(&self) -> &str {
        &self
            .model
            .listeners
            .first()
            .expect("the configuration has no listener")
            .address
    }

    /// The section as a YAML value: the model's, with the keys set by name
    /// laid over it.
    pub fn value(&self) -> Value {
        let mut v = serde_yaml::to_value(&self.model).expect("the model serialises");
        self.extra.lay_over(&mut v);
        v
    }

    /// The section as YAML, unindented, ready for [`TetherProc::start`] or
    /// [`check_section`].
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.value()).expect("a test configuration serialises")
    }

    /// Starts tether on this section and waits for its listener (and admin listener).
    pub fn start(&self) -> TetherProc {
        self.builder().start()
    }

    /// A [`TetherBuilder`] on this section: threads, grace period, environment, `spawn`.
    pub fn builder(&self) -> TetherBuilder {
        TetherProc::builder(&self.yaml()).listen(self.listen())
    }

    /// `tether -t` on this section (wrapped in the default Pingora keys): exit code,
    /// stdout, stderr.
    pub fn check(&self) -> (i32, String, String) {
        check_section(&self.yaml())
    }
}

impl Serialize for Tether {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

// ---------------------------------------------------------------- load balancers

/// `steering_policy`. The model reads `""` and `off` alike (both `Off`, its
/// default, not written); these two are written as spelled, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// `steering_policy: ""`.
    Unset,
    /// `steering_policy: off`.
    Off,
    Random,
    LeastOutstandingRequests,
    DynamicLatency,
}

/// `session_affinity_attributes.zero_downtime_failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    None,
    Temporary,
    Sticky,
}

impl Failover {
    pub const ALL: [Failover; 3] = [Failover::None, Failover::Temporary, Failover::Sticky];

    /// The model's value.
    pub fn model(self) -> model::ZeroDowntimeFailover {
        match self {
            Failover::None => model::ZeroDowntimeFailover::None,
            Failover::Temporary => model::ZeroDowntimeFailover::Temporary,
            Failover::Sticky => model::ZeroDowntimeFailover::Sticky,
        }
    }

    /// As the file spells it.
    pub fn name(self) -> &'static str {
        self.model().name()
    }
}

impl std::fmt::Display for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Failover {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.model().serialize(s)
    }
}

/// One entry of `tether.load_balancers`: a [`model::LoadBalancer`]; start with [`lb`].
#[derive(Debug, Clone, Default)]
pub struct LoadBalancer {
    pub model: model::LoadBalancer,
    /// Keys set by name (see [`SetKey`]).
    pub extra: Extra,
}

/// One load balancing rule: a [`model::Rule`]; start with [`rule`].
#[derive(Debug, Clone)]
pub struct Rule {
    pub model: model::Rule,
    /// Keys set by name (see [`SetKey`]).
    pub extra: Extra,
}

/// A rule's `overrides`: the load balancer keys it replaces (the model keeps
/// them as written, a mapping laid over the load balancer).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_pools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_policy: Option<model::SteeringPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_steering: Option<model::RandomSteering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_attributes: Option<Attributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_routing: Option<model::AdaptiveRouting>,
}

/// Some of a rule's `fixed_response`; `None`: the reader's default.
#[derive(Debug, Clone, Default)]
pub struct FixedResponse {
    pub status_code: Option<u16>,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub message_body: Option<String>,
}

/// A rule named `name` with this condition (Cloudflare's Rules language).
pub fn rule(name: &str, condition: &str) -> Rule {
    Rule {
        model: model::Rule {
            name: name.to_string(),
            condition: condition.to_string(),
            priority: 0,
            disabled: false,
            terminates: false,
            overrides: Mapping::new(),
            fixed_response: None,
        },
        extra: Extra::default(),
    }
}

impl Rule {
    pub fn priority(mut self, priority: u32) -> Self {
        self.model.priority = priority;
        self
    }
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.model.disabled = disabled;
        self
    }
    pub fn terminates(mut self, terminates: bool) -> Self {
        self.model.terminates = terminates;
        self
    }
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.model.overrides = match serde_yaml::to_value(overrides) {
            Ok(Value::Mapping(m)) => m,
            _ => Mapping::new(),
        };
        self
    }
    pub fn fixed_response(mut self, fixed: FixedResponse) -> Self {
        let d = model::FixedResponse::default();
        self.model.fixed_response = Some(model::FixedResponse {
            status_code: fixed.status_code.unwrap_or(d.status_code),
            location: fixed.location,
            content_type: fixed.content_type.unwrap_or(d.content_type),
            message_body: fixed.message_body.unwrap_or(d.message_body),
        });
        self
    }
}

impl Overrides {
    /// `overrides: { default_pools: [...] }`.
    pub fn pools<const N: usize>(pools: [&str; N]) -> Overrides {
        Overrides {
            default_pools: Some(pools.iter().map(|p| p.to_string()).collect()),
            ..Overrides::default()
        }
    }
}

/// Some of `session_affinity_attributes`; `None`: the reader's default.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samesite: Option<SameSite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<Secure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_downtime_failover: Option<Failover>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_all_headers: Option<bool>,
}

impl Attributes {
    /// The model's attributes: these over the reader's defaults.
    pub fn model(self) -> model::SessionAffinityAttributes {
        let d = model::SessionAffinityAttributes::default();
        model::SessionAffinityAttributes {
            samesite: self.samesite.unwrap_or(d.samesite),
            secure: self.secure.unwrap_or(d.secure),
            drain_duration: self
                .drain_duration
                .map_or(d.drain_duration, Duration::from_secs),
            zero_downtime_failover: self
                .zero_downtime_failover
                .map_or(d.zero_downtime_failover, Failover::model),
            headers: self.headers.unwrap_or(d.headers),
            require_all_headers: self.require_all_headers.unwrap_or(d.require_all_headers),
        }
    }
}

/// A load balancer over these `default_pools`, in failover order.
pub fn lb<const N: usize>(default_pools: [&str; N]) -> LoadBalancer {
    let mut lb = LoadBalancer::default();
    lb.model.default_pools = default_pools.iter().map(|p| p.to_string()).collect();
    lb
}

impl LoadBalancer {
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.model.enabled = enabled;
        self
    }

    pub fn fallback(mut self, pool: &str) -> Self {
        self.model.fallback_pool = Some(pool.to_string());
        self
    }

    pub fn steering(mut self, policy: Steering) -> Self {
        use model::SteeringPolicy as P;
        self.model.steering_policy = match policy {
            Steering::Unset | Steering::Off => P::Off,
            Steering::Random => P::Random,
            Steering::LeastOutstandingRequests => P::LeastOutstandingRequests,
            Steering::DynamicLatency => P::DynamicLatency,
        };
        self.extra.forget("steering_policy");
        match policy {
            Steering::Unset => self.set("steering_policy", ""),
            Steering::Off => self.set("steering_policy", "off"),
            _ => self,
        }
    }

    /// `random_steering: {default_weight, pool_weights}`.
    pub fn random_steering(mut self, default_weight: f64, pool_weights: &[(&str, f64)]) -> Self {
        self.model.random_steering = model::RandomSteering {
            default_weight,
            pool_weights: pool_weights
                .iter()
                .map(|(p, w)| (p.to_string(), *w))
                .collect(),
        };
        self
    }

    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.model.session_affinity = affinity;
        self
    }

    /// `session_affinity_ttl`, seconds (0: the type's default).
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.model.session_affinity_ttl = Duration::from_secs(seconds);
        self
    }

    /// Replaces `session_affinity_attributes` as a whole (these over the
    /// reader's defaults).
    pub fn attributes(mut self, attributes: Attributes) -> Self {
        self.model.session_affinity_attributes = attributes.model();
        self
    }

    pub fn samesite(mut self, samesite: SameSite) -> Self {
        self.model.session_affinity_attributes.samesite = samesite;
        self
    }

    pub fn secure(mut self, secure: Secure) -> Self {
        self.model.session_affinity_attributes.secure = secure;
        self
    }

    /// `drain_duration`, seconds.
    pub fn drain(mut self, seconds: u64) -> Self {
        self.model.session_affinity_attributes.drain_duration = Duration::from_secs(seconds);
        self
    }

    pub fn zero_downtime_failover(mut self, mode: Failover) -> Self {
        self.model
            .session_affinity_attributes
            .zero_downtime_failover = mode.model();
        self
    }

    /// The `headers` of `session_affinity: header` (names, `cookie:<a>,<b>` or `cookie`).
    pub fn headers<const N: usize>(mut self, headers: [&str; N]) -> Self {
        self.model.session_affinity_attributes.headers =
            headers.iter().map(|h| h.to_string()).collect();
        self
    }

    pub fn require_all_headers(mut self, all: bool) -> Self {
        self.model.session_affinity_attributes.require_all_headers = all;
        self
    }

    pub fn failover_across_pools(mut self, across: bool) -> Self {
        self.model.adaptive_routing.failover_across_pools = across;
        self
    }

    pub fn always_use_https(mut self, always: bool) -> Self {
        self.model.always_use_https = always;
        self
    }

    /// Appends a load balancing rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        let at = [key("rules"), Value::from(self.model.rules.len())];
        self.model.rules.push(rule.model);
        self.extra.nest(&at, rule.extra);
        self
    }
}

// ---------------------------------------------------------------- pools

/// One entry of `tether.pools`: a [`model::Pool`]; start with [`pool`].
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub model: model::Pool,
    /// Keys set by name, the pool's and its endpoints' (see [`SetKey`]).
    pub extra: Extra,
}

/// Some of a pool's `outlier_detection` (passive health); `None`: the reader's default.
#[derive(Debug, Clone, Default)]
pub struct OutlierDetection {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_failure: Option<u32>,
    pub base_ejection_time: Option<u64>,
    pub max_ejection_percent: Option<f64>,
}

/// Some of a pool's `load_shedding` (Cloudflare's object); `None`: the reader's default.
#[derive(Debug, Clone, Default)]
pub struct LoadShedding {
    pub default_percent: Option<f64>,
    /// `random` or `hash`.
    pub default_policy: Option<String>,
    pub session_percent: Option<f64>,
    /// `hash`.
    pub session_policy: Option<String>,
}

fn shed_policy(name: Option<String>, default: model::ShedPolicy) -> model::ShedPolicy {
    let known = |n: &str| model::ShedPolicy::SPELLINGS.iter().find(|(s, _)| *s == n);
    match name {
        None => default,
        Some(n) => known(&n)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("load_shedding: no policy {n:?} (random or hash)")),
    }
}

/// A pool of these endpoints: upstreams (`&Upstream`, named as the upstream) or
/// [`Endpoint`]s built with [`endpoint`].
pub fn pool<E: Into<Endpoint>>(endpoints: impl IntoIterator<Item = E>) -> Pool {
    endpoints
        .into_iter()
        .fold(Pool::default(), |pool, e| pool.and(e))
}

impl Pool {
    /// `slow_start`, seconds.
    pub fn slow_start(mut self, seconds: u64) -> Self {
        self.model.slow_start = Duration::from_secs(seconds);
        self
    }

    /// `outlier_detection`: these over the reader's defaults.
    pub fn outlier_detection(mut self, outlier: OutlierDetection) -> Self {
        let d = model::OutlierDetection::default();
        self.model.outlier_detection = Some(model::OutlierDetection {
            consecutive_5xx: outlier.consecutive_5xx.unwrap_or(d.consecutive_5xx),
            consecutive_gateway_failure: outlier
                .consecutive_gateway_failure
                .unwrap_or(d.consecutive_gateway_failure),
            base_ejection_time: outlier
                .base_ejection_time
                .map_or(d.base_ejection_time, Duration::from_secs),
            max_ejection_percent: outlier
                .max_ejection_percent
                .unwrap_or(d.max_ejection_percent),
        });
        self
    }

    /// `load_shedding`: these over the reader's defaults.
    pub fn load_shedding(mut self, shedding: LoadShedding) -> Self {
        let d = model::LoadShedding::default();
        self.model.load_shedding = model::LoadShedding {
            default_percent: shedding.default_percent.unwrap_or(d.default_percent),
            default_policy: shed_policy(shedding.default_policy, d.default_policy),
            session_percent: shedding.session_percent.unwrap_or(d.session_percent),
            session_policy: shed_policy(shedding.session_policy, d.session_policy),
        };
        self
    }

    /// One more endpoint, after the others.
    pub fn and(mut self, endpoint: impl Into<Endpoint>) -> Self {
        let Endpoint { model, extra } = endpoint.into();
        let at = [key("endpoints"), Value::from(self.model.endpoints.len())];
        self.model.endpoints.push(model);
        self.extra.nest(&at, extra);
        self
    }

    pub fn enabled(mut self, enabled: bool) -> Self {
        self.model.enabled = enabled;
        self
    }

    pub fn minimum_origins(mut self, n: u64) -> Self {
        self.model.minimum_origins = n as usize;
        self
    }

    /// Probed by the monitor of this name (define it with [`Tether::monitor`]).
    pub fn monitor(mut self, name: &str) -> Self {
        self.model.monitor = Some(name.to_string());
        self
    }

    pub fn origin_steering(mut self, policy: OriginSteering) -> Self {
        self.model.origin_steering = policy;
        self
    }
}

/// One endpoint of a pool: a [`model::Endpoint`]; start with [`endpoint`] or
/// [`Endpoint::at`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub model: model::Endpoint,
    /// Keys set by name (see [`SetKey`]).
    pub extra: Extra,
}

/// The endpoint of an upstream, named as it.
pub fn endpoint(up: &Upstream) -> Endpoint {
    Endpoint::at(up.name(), &up.addr().to_string())
}

impl From<&Upstream> for Endpoint {
    fn from(up: &Upstream) -> Endpoint {
        endpoint(up)
    }
}

impl Endpoint {
    /// An endpoint `name` at `address` (`IP:port` or `host:port`) as written.
    pub fn at(name: &str, address: &str) -> Endpoint {
        Endpoint {
            model: model::Endpoint::at(name, address),
            extra: Extra::default(),
        }
    }

    pub fn weight(mut self, weight: f64) -> Self {
        self.model.weight = weight;
        self
    }

    pub fn enabled(mut self, enabled: bool) -> Self {
        self.model.enabled = enabled;
        self
    }

    /// `header: {Host: [<host>]}`: the Host sent upstream.
    pub fn host(mut self, host: &str) -> Self {
        self.model.host = Some(host.to_string());
        self
    }
}

// ---------------------------------------------------------------- monitors

/// One entry of `tether.monitors`: a [`model::Monitor`]; start with
/// [`Monitor::http`], [`Monitor::https`] or [`Monitor::tcp`]. Seconds are `f64`
/// (`interval: 0.2`).
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    pub model: model::Monitor,
    /// Keys set by name (see [`SetKey`]).
    pub extra: Extra,
}

impl Monitor {
    /// `type: http`, `GET <path>`.
    pub fn http(path: &str) -> Monitor {
        Monitor::default().with(|m| m.path = path.to_string())
    }

    /// `type: https`, `GET <path>`.
    pub fn https(path: &str) -> Monitor {
        Monitor::http(path).with(|m| m.r#type = Probe::Https)
    }

    /// `type: tcp`: a connect, no request.
    pub fn tcp() -> Monitor {
        Monitor::default().with(|m| m.r#type = Probe::Tcp)
    }

    /// A quick HTTP monitor: `GET /health` every `seconds`, timeout `seconds`, no
    /// retries; one failed probe marks an endpoint down.
    pub fn every(seconds: f64) -> Monitor {
        Monitor::http("/health")
            .interval(seconds)
            .timeout(seconds)
            .retries(0)
    }

    pub fn method(mut self, method: &str) -> Self {
        self.model.method = method.to_string();
        self
    }

    /// `interval`, seconds; a `timeout` longer than it becomes it (the
    /// reader's default timeout is 5 s, never more than the interval).
    pub fn interval(mut self, seconds: f64) -> Self {
        self.model.interval = self::seconds(seconds);
        self.model.timeout = self.model.timeout.min(self.model.interval);
        self
    }

    pub fn timeout(mut self, seconds: f64) -> Self {
        self.model.timeout = self::seconds(seconds);
        self
    }

    pub fn retries(mut self, n: u32) -> Self {
        self.model.retries = n;
        self
    }

    pub fn consecutive_up(mut self, n: u32) -> Self {
        self.model.consecutive_up = n;
        self
    }

    pub fn consecutive_down(mut self, n: u32) -> Self {
        self.model.consecutive_down = n;
        self
    }

    /// `expected_codes` as the file spells them (`"200"`, `"2xx,302"`); codes
    /// the model cannot hold are written as given, for the reader to refuse.
    pub fn expected_codes(mut self, codes: &str) -> Self {
        match model::ExpectedCodes::parse(codes) {
            Some(parsed) => self.model.expected_codes = parsed,
            None => return self.set("expected_codes", codes),
        }
        self
    }

    pub fn expected_body(mut self, body: &str) -> Self {
        self.model.expected_body = body.to_lowercase();
        self
    }

    pub fn allow_insecure(mut self) -> Self {
        self.model.allow_insecure = true;
        self
    }
}
