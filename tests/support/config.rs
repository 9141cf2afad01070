//! A typed builder for the `tether:` section of a test configuration: plain values
//! serialised with serde, never YAML text glued together. Struct fields are named
//! exactly as the YAML keys (docs/configuration.md); `None` fields are left out, so a
//! test states only what it means.
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
//! Invalid files (unknown keys, wrong types) are not expressible here on purpose: the
//! tests whose subject they are write that YAML out literally and hand it to
//! [`check_section`] or [`TetherProc::start`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::tether::{check_section, TetherBuilder, TetherProc};
use super::upstream::Upstream;

// ---------------------------------------------------------------- the section

/// The keys of a section the builder has no typed field for: a key the
/// configuration reader learns is usable from every test at once, before
/// (or without) a field of its own here — `lb(["p"]).set("new_key", 5)`.
/// Serialised beside the typed fields (a key set both ways would appear
/// twice, which the reader refuses).
pub type Extra = BTreeMap<String, serde_yaml::Value>;

/// Sets `key` to `value` in a builder's [`Extra`].
pub trait SetKey: Sized {
    fn extra_keys(&mut self) -> &mut Extra;

    /// `key: value` in this section of the file, whatever the builder knows.
    fn set(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_yaml::to_value(value).expect("a YAML value");
        self.extra_keys().insert(key.to_string(), value);
        self
    }
}

macro_rules! set_key {
    ($($t:ty),*) => {$(
        impl SetKey for $t {
            fn extra_keys(&mut self) -> &mut Extra {
                &mut self.extra
            }
        }
    )*};
}
set_key!(Tether, LoadBalancer, Pool, Endpoint, ClientLimits);

/// The `tether:` section. Build it with [`tether()`] and the chained methods.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tether {
    pub listeners: Vec<Listener>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_keys_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_header: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_timeouts: Option<UpstreamTimeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_limits: Option<ClientLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<f64>,
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub pools: BTreeMap<String, Pool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, Monitor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// Keys the builder has no field for, set with `set` (see [`Extra`]).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tether.cluster`: replicas with the same `name` share changes and pins
/// through the Redis at `redis_url`, signed with the secret of `key_file`.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub redis_url: String,
    pub name: String,
    pub key_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// The cluster key of the tests (32 bytes), unless a test says otherwise.
pub const CLUSTER_KEY: &[u8] = b"tether cluster test key, 32 b...";

/// Writes a cluster key file holding `key` into `dir`; returns its path.
pub fn cluster_key_file(dir: &Path, name: &str, key: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, key).expect("write the cluster key file");
    path.display().to_string()
}

/// An empty `tether:` section, to be filled by the chained methods.
pub fn tether() -> Tether {
    Tether::default()
}

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// `tls: {cert_path, key_path}` of a listener; see [`Tls::self_signed`].
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

/// `upstream_timeouts`, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamTimeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<f64>,
}

/// `access_log`: `format` is `text` or `json`.
#[derive(Debug, Clone, Serialize)]
pub struct AccessLog {
    pub format: String,
}

/// `client_limits`; timeouts in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_header_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_body_rate: Option<u64>,
    /// Keys the builder has no field for, set with `set` (see [`Extra`]).
    #[serde(flatten)]
    pub extra: Extra,
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
        self.listeners.push(Listener {
            address: address.to_string(),
            tls: None,
        });
        self
    }

    /// An HTTPS listener on `127.0.0.1:<port>` with these certificate files.
    pub fn tls_listener(mut self, port: u16, tls: &Tls) -> Tether {
        self.listeners.push(Listener {
            address: loopback(port),
            tls: Some(tls.clone()),
        });
        self
    }

    /// The admin listener on `127.0.0.1:<port>`, no token.
    pub fn admin(mut self, port: u16) -> Tether {
        self.admin = Some(Admin {
            address: loopback(port),
            token_file: None,
        });
        self
    }

    /// The admin listener on `127.0.0.1:<port>`, every call needing the token in
    /// `token_file`.
    pub fn admin_with_token(mut self, port: u16, token_file: &Path) -> Tether {
        self.admin = Some(Admin {
            address: loopback(port),
            token_file: Some(token_file.display().to_string()),
        });
        self
    }

    /// The admin listener on `address` as written (`0.0.0.0:<port>`), with the token in
    /// `token_file` if given.
    pub fn admin_at(mut self, address: &str, token_file: Option<&Path>) -> Tether {
        self.admin = Some(Admin {
            address: address.to_string(),
            token_file: token_file.map(|f| f.display().to_string()),
        });
        self
    }

    pub fn cookie_keys_file(mut self, path: &str) -> Tether {
        self.cookie_keys_file = Some(path.to_string());
        self
    }

    pub fn state_file(mut self, path: &Path) -> Tether {
        self.state_file = Some(path.display().to_string());
        self
    }

    pub fn max_sessions(mut self, n: u64) -> Tether {
        self.max_sessions = Some(n);
        self
    }

    /// `decision_header: true`: responses carry `X-Tether-Decision`.
    pub fn decision_header(mut self) -> Tether {
        self.decision_header = Some(true);
        self
    }

    /// `upstream_timeouts: {read: <seconds>}`.
    pub fn upstream_read_timeout(mut self, seconds: f64) -> Tether {
        self.upstream_timeouts = Some(UpstreamTimeouts {
            read: Some(seconds),
            ..UpstreamTimeouts::default()
        });
        self
    }

    /// `access_log: { format }` (`text` or `json`).
    pub fn access_log(mut self, format: &str) -> Tether {
        self.access_log = Some(AccessLog {
            format: format.to_string(),
        });
        self
    }

    /// `dns_refresh` in seconds.
    pub fn dns_refresh(mut self, seconds: f64) -> Tether {
        self.dns_refresh = Some(seconds);
        self
    }

    /// `client_limits` as given.
    pub fn client_limits(mut self, limits: ClientLimits) -> Tether {
        self.client_limits = Some(limits);
        self
    }

    /// The load balancer serving `host` (`"*"`: every host no other entry names).
    pub fn load_balancer(mut self, host: &str, lb: LoadBalancer) -> Tether {
        self.load_balancers.insert(host.to_string(), lb);
        self
    }

    pub fn pool(mut self, name: &str, pool: Pool) -> Tether {
        self.pools.insert(name.to_string(), pool);
        self
    }

    pub fn monitor(mut self, name: &str, monitor: Monitor) -> Tether {
        self.monitors.insert(name.to_string(), monitor);
        self
    }

    /// `cluster: {redis_url, name, key_file}` (see [`cluster_key_file`]).
    pub fn cluster(mut self, redis_url: &str, name: &str, key_file: &str) -> Tether {
        self.cluster = Some(Cluster {
            redis_url: redis_url.to_string(),
            name: name.to_string(),
            key_file: key_file.to_string(),
            ca_file: None,
            username: None,
            password_file: None,
        });
        self
    }

    /// The cluster's `ca_file` (after [`cluster`](Self::cluster)).
    pub fn cluster_ca_file(mut self, ca_file: &str) -> Tether {
        if let Some(c) = self.cluster.as_mut() {
            c.ca_file = Some(ca_file.to_string());
        }
        self
    }

    /// The cluster's `password_file` and optional `username` (after
    /// [`cluster`](Self::cluster)).
    pub fn cluster_password(mut self, password_file: &str, username: Option<&str>) -> Tether {
        if let Some(c) = self.cluster.as_mut() {
            c.password_file = Some(password_file.to_string());
            c.username = username.map(str::to_string);
        }
        self
    }

    /// The first listener's address (panics if there is none).
    pub fn listen(&self) -> &str {
        &self
            .listeners
            .first()
            .expect("the configuration has no listener")
            .address
    }

    /// The section as YAML, unindented, ready for [`TetherProc::start`] or
    /// [`check_section`].
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a test configuration serialises")
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

// ---------------------------------------------------------------- load balancers

/// `session_affinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Affinity {
    None,
    Cookie,
    IpCookie,
    Header,
    SourceIp,
}

/// `steering_policy`; `Unset` is the empty string, which means `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Steering {
    #[serde(rename = "")]
    Unset,
    Off,
    Random,
    LeastOutstandingRequests,
    DynamicLatency,
}

/// `session_affinity_attributes.zero_downtime_failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failover {
    None,
    Temporary,
    Sticky,
}

impl Failover {
    pub const ALL: [Failover; 3] = [Failover::None, Failover::Temporary, Failover::Sticky];

    /// As the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Failover::None => "none",
            Failover::Temporary => "temporary",
            Failover::Sticky => "sticky",
        }
    }
}

impl std::fmt::Display for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `session_affinity_attributes.samesite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SameSite {
    Auto,
    Lax,
    Strict,
    None,
}

/// `session_affinity_attributes.secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Secure {
    Auto,
    Always,
    Never,
}

/// One entry of `tether.load_balancers`; start with [`lb`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadBalancer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    pub default_pools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_policy: Option<Steering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_steering: Option<RandomSteering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_attributes: Option<Attributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_routing: Option<AdaptiveRouting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_use_https: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Keys the builder has no field for, set with `set` (see [`Extra`]).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One load balancing rule (Cloudflare's object); start with [`rule`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    pub name: String,
    pub condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Overrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
}

/// A rule's `overrides`: the load balancer keys it replaces.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_pools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_policy: Option<Steering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_steering: Option<RandomSteering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_attributes: Option<Attributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_routing: Option<AdaptiveRouting>,
}

/// A rule's `fixed_response`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FixedResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
}

/// A rule named `name` with this condition (Cloudflare's Rules language).
pub fn rule(name: &str, condition: &str) -> Rule {
    Rule {
        name: name.to_string(),
        condition: condition.to_string(),
        ..Rule::default()
    }
}

impl Rule {
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }
    pub fn terminates(mut self, terminates: bool) -> Self {
        self.terminates = Some(terminates);
        self
    }
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = Some(overrides);
        self
    }
    pub fn fixed_response(mut self, fixed: FixedResponse) -> Self {
        self.fixed_response = Some(fixed);
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

/// `session_affinity_attributes`; every field optional.
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct RandomSteering {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_weight: Option<f64>,
    pub pool_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AdaptiveRouting {
    pub failover_across_pools: bool,
}

/// A load balancer over these `default_pools`, in failover order.
pub fn lb<const N: usize>(default_pools: [&str; N]) -> LoadBalancer {
    LoadBalancer {
        default_pools: default_pools.iter().map(|p| p.to_string()).collect(),
        ..LoadBalancer::default()
    }
}

impl LoadBalancer {
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    pub fn fallback(mut self, pool: &str) -> Self {
        self.fallback_pool = Some(pool.to_string());
        self
    }

    pub fn steering(mut self, policy: Steering) -> Self {
        self.steering_policy = Some(policy);
        self
    }

    /// `random_steering: {default_weight, pool_weights}`.
    pub fn random_steering(mut self, default_weight: f64, pool_weights: &[(&str, f64)]) -> Self {
        self.random_steering = Some(RandomSteering {
            default_weight: Some(default_weight),
            pool_weights: pool_weights
                .iter()
                .map(|(p, w)| (p.to_string(), *w))
                .collect(),
        });
        self
    }

    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.session_affinity = Some(affinity);
        self
    }

    /// `session_affinity_ttl`, seconds.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.session_affinity_ttl = Some(seconds);
        self
    }

    /// Replaces `session_affinity_attributes` as a whole (`Attributes::default()`
    /// writes `{}`).
    pub fn attributes(mut self, attributes: Attributes) -> Self {
        self.session_affinity_attributes = Some(attributes);
        self
    }

    fn attrs(&mut self) -> &mut Attributes {
        self.session_affinity_attributes
            .get_or_insert_with(Attributes::default)
    }

    pub fn samesite(mut self, samesite: SameSite) -> Self {
        self.attrs().samesite = Some(samesite);
        self
    }

    pub fn secure(mut self, secure: Secure) -> Self {
        self.attrs().secure = Some(secure);
        self
    }

    /// `drain_duration`, seconds.
    pub fn drain(mut self, seconds: u64) -> Self {
        self.attrs().drain_duration = Some(seconds);
        self
    }

    pub fn zero_downtime_failover(mut self, mode: Failover) -> Self {
        self.attrs().zero_downtime_failover = Some(mode);
        self
    }

    /// The `headers` of `session_affinity: header` (names, `cookie:<a>,<b>` or `cookie`).
    pub fn headers<const N: usize>(mut self, headers: [&str; N]) -> Self {
        self.attrs().headers = Some(headers.iter().map(|h| h.to_string()).collect());
        self
    }

    pub fn require_all_headers(mut self, all: bool) -> Self {
        self.attrs().require_all_headers = Some(all);
        self
    }

    pub fn failover_across_pools(mut self, across: bool) -> Self {
        self.adaptive_routing = Some(AdaptiveRouting {
            failover_across_pools: across,
        });
        self
    }

    pub fn always_use_https(mut self, always: bool) -> Self {
        self.always_use_https = Some(always);
        self
    }

    /// Appends a load balancing rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
}

// ---------------------------------------------------------------- pools

/// `origin_steering.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginSteering {
    Random,
    Hash,
    LeastOutstandingRequests,
    LeastConnections,
}

#[derive(Debug, Clone, Serialize)]
pub struct OriginSteeringPolicy {
    pub policy: OriginSteering,
}

/// One entry of `tether.pools`; start with [`pool`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_origins: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_steering: Option<OriginSteeringPolicy>,
    pub endpoints: Vec<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_shedding: Option<LoadShedding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<u64>,
    /// Keys the builder has no field for, set with `set` (see [`Extra`]).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A pool's `outlier_detection` (passive health).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutlierDetection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<f64>,
}

/// A pool's `load_shedding` (Cloudflare's object).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadShedding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_percent: Option<f64>,
    /// `random` or `hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_percent: Option<f64>,
    /// `hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<String>,
}

/// A pool of these endpoints: upstreams (`&Upstream`, named as the upstream) or
/// [`Endpoint`]s built with [`endpoint`].
pub fn pool<E: Into<Endpoint>>(endpoints: impl IntoIterator<Item = E>) -> Pool {
    Pool {
        endpoints: endpoints.into_iter().map(Into::into).collect(),
        ..Pool::default()
    }
}

impl Pool {
    /// `slow_start`, seconds.
    pub fn slow_start(mut self, seconds: u64) -> Self {
        self.slow_start = Some(seconds);
        self
    }

    pub fn outlier_detection(mut self, outlier: OutlierDetection) -> Self {
        self.outlier_detection = Some(outlier);
        self
    }

    pub fn load_shedding(mut self, shedding: LoadShedding) -> Self {
        self.load_shedding = Some(shedding);
        self
    }

    /// One more endpoint, after the others.
    pub fn and(mut self, endpoint: impl Into<Endpoint>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    pub fn minimum_origins(mut self, n: u64) -> Self {
        self.minimum_origins = Some(n);
        self
    }

    /// Probed by the monitor of this name (define it with [`Tether::monitor`]).
    pub fn monitor(mut self, name: &str) -> Self {
        self.monitor = Some(name.to_string());
        self
    }

    pub fn origin_steering(mut self, policy: OriginSteering) -> Self {
        self.origin_steering = Some(OriginSteeringPolicy { policy });
        self
    }
}

/// One endpoint of a pool; start with [`endpoint`] or [`Endpoint::at`].
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<BTreeMap<String, Vec<String>>>,
    /// Keys the builder has no field for, set with `set` (see [`Extra`]).
    #[serde(flatten)]
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
            name: name.to_string(),
            address: address.to_string(),
            weight: None,
            enabled: None,
            header: None,
            extra: Extra::default(),
        }
    }

    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = Some(weight);
        self
    }

    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// `header: {Host: [<host>]}`: the Host sent upstream.
    pub fn host(mut self, host: &str) -> Self {
        self.header = Some(BTreeMap::from([(
            "Host".to_string(),
            vec![host.to_string()],
        )]));
        self
    }
}

// ---------------------------------------------------------------- monitors

/// `type` of a monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Http,
    Https,
    Tcp,
}

/// One entry of `tether.monitors`; start with [`Monitor::http`], [`Monitor::https`]
/// or [`Monitor::tcp`]. Seconds are `f64` (`interval: 0.2`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Monitor {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_codes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_up: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_down: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_insecure: Option<bool>,
}

impl Monitor {
    /// `type: http`, `GET <path>`.
    pub fn http(path: &str) -> Monitor {
        Monitor {
            kind: Some(Probe::Http),
            path: Some(path.to_string()),
            ..Monitor::default()
        }
    }

    /// `type: https`, `GET <path>`.
    pub fn https(path: &str) -> Monitor {
        Monitor {
            kind: Some(Probe::Https),
            ..Monitor::http(path)
        }
    }

    /// `type: tcp`: a connect, no request.
    pub fn tcp() -> Monitor {
        Monitor {
            kind: Some(Probe::Tcp),
            ..Monitor::default()
        }
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
        self.method = Some(method.to_string());
        self
    }

    pub fn interval(mut self, seconds: f64) -> Self {
        self.interval = Some(seconds);
        self
    }

    pub fn timeout(mut self, seconds: f64) -> Self {
        self.timeout = Some(seconds);
        self
    }

    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    pub fn consecutive_up(mut self, n: u32) -> Self {
        self.consecutive_up = Some(n);
        self
    }

    pub fn consecutive_down(mut self, n: u32) -> Self {
        self.consecutive_down = Some(n);
        self
    }

    pub fn expected_codes(mut self, codes: &str) -> Self {
        self.expected_codes = Some(codes.to_string());
        self
    }

    pub fn expected_body(mut self, body: &str) -> Self {
        self.expected_body = Some(body.to_string());
        self
    }

    pub fn allow_insecure(mut self) -> Self {
        self.allow_insecure = Some(true);
        self
    }
}
