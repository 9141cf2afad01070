//! The validated, typed configuration: what the rest of Tether reads.
//!
//! Field names equal the YAML keys under `tether:` so that `grep` links the
//! documentation, the file and the code. Every value here has already been
//! checked by [`super::load`]; nothing downstream re-validates.
//!
//! It is also the one description of the file's keys for writing one: every
//! type serialises (serde) to exactly the YAML the reader accepts — durations
//! as the seconds the file uses, enumerations as their spelling
//! (`spelling.rs`), a setting equal to the reader's default left out (the
//! `Default`s here are the reader's), values the file does not hold
//! (names that are map keys, resolved addresses) skipped. Loading, writing and
//! loading again gives the same model (`config::tests::load::model_round_trips`);
//! the tests' configuration builder (`tests/support/config.rs`) builds these
//! values and writes them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// `true` when `value` is its type's default (the reader's): left out of a written file.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A duration as the file writes it: whole seconds as an integer, else a fraction.
fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() == 0 {
        s.serialize_u64(d.as_secs())
    } else {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// An optional duration as the file writes it (only called for `Some`).
fn optional_seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => seconds(d, s),
        None => s.serialize_none(),
    }
}

/// Everything under the `tether:` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub listeners: Vec<Listener>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_keys_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
    /// Bound of the `header` / `source_ip` session table (default 1,000,000).
    #[serde(skip_serializing_if = "is_default_max_sessions")]
    pub max_sessions: usize,
    /// `true`: responses carry `X-Tether-Decision`.
    #[serde(skip_serializing_if = "is_default")]
    pub decision_header: bool,
    /// Tether's own upstream timeouts (the spec is silent; see docs/configuration.md).
    #[serde(skip_serializing_if = "is_default")]
    pub upstream_timeouts: UpstreamTimeouts,
    /// What one client may hold and send (docs/configuration.md, "Client limits").
    #[serde(skip_serializing_if = "is_default")]
    pub client_limits: ClientLimits,
    /// `tether.access_log`: how each request's access-log line is written
    /// (docs/operations.md, "Access log").
    #[serde(skip_serializing_if = "is_default")]
    pub access_log: AccessLog,
    /// `tether.dns_refresh`: how often endpoints whose address is a host
    /// name are resolved again (default 60 s).
    #[serde(
        serialize_with = "seconds",
        skip_serializing_if = "is_default_dns_refresh"
    )]
    pub dns_refresh: Duration,
    /// `tether.upgraded_connections`: what happens to open WebSockets when
    /// their endpoint may take no more traffic (docs/realtime.md).
    #[serde(skip_serializing_if = "is_default")]
    pub upgraded_connections: UpgradedConnections,
    /// Keyed by host name, lower-cased; `"*"` is the catch-all.
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub pools: BTreeMap<String, Pool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, Monitor>,
    /// `tether.cluster`: `None` is the single process (docs/replicas.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
}

/// `max_sessions` when the file does not set it.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
/// `dns_refresh` when the file does not set it.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(60);

fn is_default_max_sessions(n: &usize) -> bool {
    *n == DEFAULT_MAX_SESSIONS
}

fn is_default_dns_refresh(d: &Duration) -> bool {
    *d == DEFAULT_DNS_REFRESH
}

/// The reader's defaults: no listener, load balancer or pool yet (a file
/// needs them; the tests' builder starts here).
impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            admin: None,
            cookie_keys_file: None,
            state_file: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            decision_header: false,
            upstream_timeouts: UpstreamTimeouts::default(),
            client_limits: ClientLimits::default(),
            access_log: AccessLog::default(),
            dns_refresh: DEFAULT_DNS_REFRESH,
            upgraded_connections: UpgradedConnections::default(),
            load_balancers: BTreeMap::new(),
            pools: BTreeMap::new(),
            monitors: BTreeMap::new(),
            cluster: None,
        }
    }
}

/// `tether.cluster`: replicas with the same `name` are one load balancer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// `redis://host:port/db`, `rediss://...`, `redis+unix:///path`.
    pub redis_url: String,
    /// The Redis key prefix `tether:{name}:`.
    pub name: String,
    /// The secret every shared value is signed with (at least 32 bytes
    /// after trimming; [`crate::cluster::key::ClusterKey`]).
    pub key_file: PathBuf,
    /// PEM CA certificate(s) that verify the Redis server's certificate
    /// (`rediss://` only); `None`: the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The Redis ACL user (with `password_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Redis password (or the ACL user's), trimmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// Kept as written: Pingora's hot upgrade matches listen addresses as strings.
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A listener's `tls`: its certificates, the first the default (no SNI, or
/// no certificate names the server name asked for). Written either as the
/// one-certificate shorthand `{cert_path, key_path}` or as
/// `certificates: [{cert_path, key_path}, …]`; `shorthand` says which, so a
/// key path in an error names what the file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub certificates: Vec<CertificateFiles>,
    pub shorthand: bool,
}

/// One certificate chain (PEM, leaf first) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Tls {
    /// The one-certificate shorthand.
    pub fn single(cert_path: PathBuf, key_path: PathBuf) -> Tls {
        Tls {
            certificates: vec![CertificateFiles {
                cert_path,
                key_path,
            }],
            shorthand: true,
        }
    }

    /// Certificates chosen by SNI, the first the default.
    pub fn list(certificates: Vec<CertificateFiles>) -> Tls {
        Tls {
            certificates,
            shorthand: false,
        }
    }

    /// The key path of certificate `index`'s `key` (`cert_path` or
    /// `key_path`) under the listener's `tls` (`prefix`), as the file writes it.
    pub fn key_path(&self, prefix: &str, index: usize, key: &str) -> String {
        if self.shorthand {
            format!("{prefix}.{key}")
        } else {
            format!("{prefix}.certificates[{index}].{key}")
        }
    }
}

/// Written as it was read: the shorthand, or the list.
impl Serialize for Tls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match (self.shorthand, self.certificates.as_slice()) {
            (true, [one]) => one.serialize(serializer),
            _ => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("certificates", &self.certificates)?;
                map.end()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admin {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// `tether.access_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AccessLog {
    /// `text` (default): `key=value` fields after env_logger's prefix;
    /// `json`: one JSON object per line.
    pub format: AccessLogFormat,
}

/// `tether.access_log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    #[default]
    Text,
    Json,
}

/// Limits on client connections, the front door's defences.
/// Written whole when any limit differs from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClientLimits {
    /// Open client connections per process; past it new ones are closed at
    /// once. Default 10,000.
    pub max_connections: usize,
    /// From a connection's accept (or a request's first byte on a kept-alive
    /// connection) to its complete request header; exceeded → 408. Default 10 s.
    #[serde(serialize_with = "seconds")]
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request; then
    /// it is closed. Default 60 s.
    #[serde(serialize_with = "seconds")]
    pub idle_timeout: Duration,
    /// Largest request header (request line and fields); larger → 431.
    /// Default 65,536.
    pub max_request_header_bytes: usize,
    /// The longest wait for the next bytes of a request body; exceeded →
    /// 408. Default 30 s.
    #[serde(serialize_with = "seconds")]
    pub body_timeout: Duration,
    /// Bytes a second a request body must average once `header_timeout`
    /// has passed since it began; slower → 408. 0: no minimum. Default 500.
    pub min_body_rate: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_request_header_bytes: 65_536,
            body_timeout: Duration::from_secs(30),
            min_body_rate: 500,
        }
    }
}

/// `tether.upgraded_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UpgradedConnections {
    /// How long an endpoint must have been unfit for traffic (drain ended,
    /// disabled without drain, unhealthy, ejected, removed) before its open
    /// upgraded connections are closed. Default 0: at once, as HAProxy's
    /// `on-marked-down shutdown-sessions`.
    #[serde(serialize_with = "seconds")]
    pub close_grace: Duration,
}

/// `upstream_timeouts`, in seconds; written whole when one differs from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UpstreamTimeouts {
    /// TCP connect to an endpoint; a failure is retried elsewhere (SPEC 4.4). Default 5 s.
    #[serde(serialize_with = "seconds")]
    pub connect: Duration,
    /// Longest wait for the endpoint's next bytes; exceeded → 504. Default 100 s.
    #[serde(serialize_with = "seconds")]
    pub read: Duration,
    /// Longest wait to write to the endpoint. Default 100 s.
    #[serde(serialize_with = "seconds")]
    pub write: Duration,
    /// How long an idle kept-alive upstream connection stays pooled. Default 90 s.
    #[serde(serialize_with = "seconds")]
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(100),
            write: Duration::from_secs(100),
            idle: Duration::from_secs(90),
        }
    }
}

/// Written as its entry of `tether.load_balancers` (the name is the key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadBalancer {
    /// The host it serves, lower-case, or `"*"`.
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Failover order; every name exists in [`Config::pools`].
    pub default_pools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_pool: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub steering_policy: SteeringPolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub random_steering: RandomSteering,
    #[serde(skip_serializing_if = "is_default")]
    pub session_affinity: SessionAffinity,
    /// Whole seconds in the file; already defaulted per type (SPEC 4.1).
    /// Zero when affinity is off. Zero is left out of a written file (the
    /// reader then takes the type's default).
    #[serde(serialize_with = "seconds", skip_serializing_if = "Duration::is_zero")]
    pub session_affinity_ttl: Duration,
    #[serde(skip_serializing_if = "is_default")]
    pub session_affinity_attributes: SessionAffinityAttributes,
    #[serde(skip_serializing_if = "is_default")]
    pub adaptive_routing: AdaptiveRouting,
    #[serde(skip_serializing_if = "is_default")]
    pub always_use_https: bool,
    /// Cloudflare's load balancing rules, in file order (docs/rules.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// The reader's defaults for a load balancer over no pool yet (a file needs
/// `default_pools`; the tests' builder starts here).
impl Default for LoadBalancer {
    fn default() -> Self {
        LoadBalancer {
            name: String::new(),
            enabled: true,
            default_pools: Vec::new(),
            fallback_pool: None,
            steering_policy: SteeringPolicy::default(),
            random_steering: RandomSteering::default(),
            session_affinity: SessionAffinity::default(),
            session_affinity_ttl: Duration::ZERO,
            session_affinity_attributes: SessionAffinityAttributes::default(),
            adaptive_routing: AdaptiveRouting::default(),
            always_use_https: false,
            rules: Vec::new(),
        }
    }
}

/// One load balancing rule (Cloudflare's object, same field names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Unique within its load balancer; names the rule in the log, the
    /// metrics and `X-Tether-Decision`.
    pub name: String,
    /// In Cloudflare's Rules language, as written; already parsed once by
    /// the reader, so it compiles. Empty: every request.
    pub condition: String,
    /// Lower runs first; equal priorities keep file order. Default 0.
    #[serde(skip_serializing_if = "is_default")]
    pub priority: u32,
    #[serde(skip_serializing_if = "is_default")]
    pub disabled: bool,
    /// A matching rule stops the evaluation (always so with `fixed_response`).
    #[serde(skip_serializing_if = "is_default")]
    pub terminates: bool,
    /// Load balancer keys (top level) that replace the load balancer's own
    /// while the rule applies, as written; validated over the load balancer.
    #[serde(skip_serializing_if = "serde_yaml::Mapping::is_empty")]
    pub overrides: serde_yaml::Mapping,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
}

/// `fixed_response`: the rule answers the request itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixedResponse {
    /// Default 200.
    pub status_code: u16,
    /// `Location` header, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Default `text/plain`.
    pub content_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message_body: String,
}

impl Default for FixedResponse {
    fn default() -> Self {
        FixedResponse {
            status_code: 200,
            location: None,
            content_type: "text/plain".to_string(),
            message_body: String::new(),
        }
    }
}

/// Written as its spelling (`spelling.rs`), as every enumeration here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SteeringPolicy {
    /// `""` or `off`: the listed order (active–passive failover).
    #[default]
    Off,
    Random,
    LeastOutstandingRequests,
    DynamicLatency,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomSteering {
    /// 0.0 ..= 1.0, default 1.0.
    pub default_weight: f64,
    /// Pool name → 0.0 ..= 1.0; every name exists in [`Config::pools`].
    pub pool_weights: BTreeMap<String, f64>,
}

impl RandomSteering {
    pub fn weight_of(&self, pool: &str) -> f64 {
        self.pool_weights
            .get(pool)
            .copied()
            .unwrap_or(self.default_weight)
    }
}

impl Default for RandomSteering {
    fn default() -> Self {
        RandomSteering {
            default_weight: 1.0,
            pool_weights: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SessionAffinity {
    /// `""` or `none`.
    #[default]
    None,
    Cookie,
    IpCookie,
    Header,
    SourceIp,
}

/// Written whole when any attribute differs from the defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionAffinityAttributes {
    pub samesite: SameSite,
    pub secure: Secure,
    /// Whole seconds in the file; zero: disabling is immediate.
    #[serde(serialize_with = "seconds")]
    pub drain_duration: Duration,
    pub zero_downtime_failover: ZeroDowntimeFailover,
    /// As written in the file (`X-User`, `cookie:a,b`, `cookie`).
    pub headers: Vec<String>,
    pub require_all_headers: bool,
}

impl Default for SessionAffinityAttributes {
    fn default() -> Self {
        SessionAffinityAttributes {
            samesite: SameSite::Auto,
            secure: Secure::Auto,
            drain_duration: Duration::ZERO,
            zero_downtime_failover: ZeroDowntimeFailover::None,
            headers: Vec::new(),
            require_all_headers: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    Auto,
    Lax,
    Strict,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Secure {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZeroDowntimeFailover {
    None,
    Temporary,
    Sticky,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AdaptiveRouting {
    pub failover_across_pools: bool,
}

/// Written as its entry of `tether.pools` (the name is the key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// The health threshold: at least this many enabled, healthy endpoints. Default 1.
    #[serde(skip_serializing_if = "is_one")]
    pub minimum_origins: usize,
    /// Every name exists in [`Config::monitors`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// `origin_steering: {policy: ...}` in the file.
    #[serde(serialize_with = "origin_steering", skip_serializing_if = "is_default")]
    pub origin_steering: OriginSteering,
    /// In file order; names unique within the pool.
    pub endpoints: Vec<Endpoint>,
    /// Cloudflare's `load_shedding`; all zero: nothing is shed.
    #[serde(skip_serializing_if = "is_default")]
    pub load_shedding: LoadShedding,
    /// Passive health; `None`: live traffic never ejects an endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// An endpoint that becomes usable takes a linearly growing share of new
    /// sessions over this window; zero: at once. Whole seconds in the file.
    #[serde(serialize_with = "seconds", skip_serializing_if = "Duration::is_zero")]
    pub slow_start: Duration,
    /// `read_timeout`: the longest wait for the next bytes from this pool's
    /// endpoints (long polls, server-sent events, idle WebSockets);
    /// `None`: `tether.upstream_timeouts.read`. Seconds in the file.
    #[serde(
        serialize_with = "optional_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_timeout: Option<Duration>,
    /// `tls`: HTTPS to this pool's endpoints (docs/origins.md); `None`:
    /// plaintext HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolTls>,
    /// `protocol`: the HTTP version spoken to the endpoints (docs/origins.md).
    #[serde(skip_serializing_if = "is_default")]
    pub protocol: OriginProtocol,
}

/// `pools.<name>.protocol`: how requests reach the pool's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OriginProtocol {
    /// HTTP/1.1 (default), over TLS when the pool has `tls`.
    #[default]
    Http1,
    /// HTTP/2 over TLS, asked for by ALPN `h2` (the pool needs `tls`).
    H2,
    /// HTTP/2 in plaintext with prior knowledge (no upgrade, no ALPN).
    H2c,
}

/// `pools.<name>.tls`: how Tether speaks TLS to the pool's endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolTls {
    /// `true` (default): the endpoint's certificate must chain to `ca_path`
    /// (or the system's roots) and name `server_name` (Cloudflare's
    /// "Full (strict)"); `false`: encrypted, not verified ("Full").
    #[serde(skip_serializing_if = "is_true")]
    pub verify: bool,
    /// PEM CA certificate(s) the endpoints' certificates must chain to;
    /// `None`: the system's trusted roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
    /// SNI and the name verified, for every endpoint that does not set its
    /// own; `None`: see [`Endpoint::server_name`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM certificate chain presented to the endpoints (mTLS, Cloudflare's
    /// Authenticated Origin Pulls); with `client_key_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_path: Option<PathBuf>,
    /// The files above, read and checked once when the file is loaded
    /// (`config::checks`); not in the file.
    #[serde(skip)]
    pub loaded: LoadedTls,
}

impl Default for PoolTls {
    fn default() -> Self {
        PoolTls {
            verify: true,
            ca_path: None,
            server_name: None,
            client_cert_path: None,
            client_key_path: None,
            loaded: LoadedTls::default(),
        }
    }
}

/// A pool's CA certificates and client certificate as Pingora's peer takes
/// them, shared by every request's peer. Equal to any other: it is what the
/// paths (compared) hold.
#[derive(Clone, Default)]
pub struct LoadedTls {
    pub ca: Option<std::sync::Arc<pingora::protocols::tls::CaType>>,
    /// A hash of `ca`'s certificates (0: none), the peers' `group_key`:
    /// Pingora's connection-pool key leaves the CA out, so without it a
    /// reload to another CA would reuse connections verified by the old one.
    pub ca_fingerprint: u64,
    pub client_cert_key: Option<std::sync::Arc<pingora::utils::tls::CertKey>>,
}

impl PartialEq for LoadedTls {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LoadedTls {}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client_cert_key", &self.client_cert_key.is_some())
            .finish()
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn origin_steering<S: Serializer>(policy: &OriginSteering, s: S) -> Result<S::Ok, S::Error> {
    BTreeMap::from([("policy", policy)]).serialize(s)
}

/// The reader's defaults for a pool of no endpoint yet (a file needs one;
/// the tests' builder starts here).
impl Default for Pool {
    fn default() -> Self {
        Pool {
            name: String::new(),
            enabled: true,
            minimum_origins: 1,
            monitor: None,
            origin_steering: OriginSteering::default(),
            endpoints: Vec::new(),
            load_shedding: LoadShedding::default(),
            outlier_detection: None,
            slow_start: Duration::ZERO,
            read_timeout: None,
            tls: None,
            protocol: OriginProtocol::default(),
        }
    }
}

/// `outlier_detection`: live requests' failures eject an endpoint for a while
/// (docs/health-checks.md, "Passive health").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutlierDetection {
    /// 5xx answers in a row that eject; 0: off. Default 5.
    pub consecutive_5xx: u32,
    /// 502/503/504, connect errors and timeouts in a row that eject; 0: off. Default 3.
    pub consecutive_gateway_failure: u32,
    /// The first ejection's length; doubles on each repeat. Default 30 s.
    #[serde(serialize_with = "seconds")]
    pub base_ejection_time: Duration,
    /// Most of the pool's endpoints ejected at once, percent. Default 50.
    pub max_ejection_percent: f64,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 3,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50.0,
        }
    }
}

/// `load_shedding`: shares of a pool's traffic sent to the next pool in the
/// load balancer's order (docs/routing.md, "Load shedding").
/// Written whole when any share differs from zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadShedding {
    /// Percent (0..=100) of new sessions and of traffic without affinity.
    pub default_percent: f64,
    pub default_policy: ShedPolicy,
    /// Percent (0..=100) of existing sessions pinned to the pool.
    pub session_percent: f64,
    /// Always `Hash` (Cloudflare's only value).
    pub session_policy: ShedPolicy,
}

impl Default for LoadShedding {
    fn default() -> Self {
        LoadShedding {
            default_percent: 0.0,
            default_policy: ShedPolicy::Random,
            session_percent: 0.0,
            session_policy: ShedPolicy::Hash,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShedPolicy {
    /// A fresh draw per request.
    #[default]
    Random,
    /// The session's stable hash, else the client IP's: every replica sheds
    /// the same ones.
    Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OriginSteering {
    #[default]
    Random,
    Hash,
    LeastOutstandingRequests,
    LeastConnections,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    pub name: String,
    /// As written (`10.0.0.1:8080` or `host:8080`).
    pub address: String,
    /// Resolved once at load time (not in the file).
    #[serde(skip)]
    pub socket_addr: SocketAddr,
    /// 0.0 ..= 1.0; 0 takes no new sessions.
    #[serde(skip_serializing_if = "is_full_weight")]
    pub weight: f64,
    #[serde(skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// `header: { Host: [...] }`: the Host sent upstream, when given.
    #[serde(
        rename = "header",
        serialize_with = "host_header",
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<String>,
    /// SNI and the name verified for this endpoint when its pool has `tls`;
    /// `None`: the pool's `tls.server_name`, else the host name of
    /// `address` when it is a name, else `header.Host` (without a port),
    /// else the address's IP (docs/origins.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

fn is_full_weight(w: &f64) -> bool {
    *w == 1.0
}

fn host_header<S: Serializer>(host: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    BTreeMap::from([("Host", host.as_slice())]).serialize(s)
}

impl Endpoint {
    /// An endpoint `name` at `address` as written, with the reader's defaults;
    /// its `socket_addr` is unresolved (`0.0.0.0:0`) until a file is loaded.
    pub fn at(name: &str, address: &str) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            address: address.to_string(),
            socket_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            weight: 1.0,
            enabled: true,
            host: None,
            server_name: None,
        }
    }
}

/// Written as its entry of `tether.monitors` (the name is the key), every key
/// written out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitor {
    #[serde(skip)]
    pub name: String,
    pub r#type: MonitorType,
    pub method: String,
    pub path: String,
    /// 0: the endpoint's port.
    pub port: u16,
    pub expected_codes: ExpectedCodes,
    /// Lower-cased; matched case-insensitively as a substring. Empty = any body.
    pub expected_body: String,
    /// Header name → values, sent with every probe.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    #[serde(serialize_with = "seconds")]
    pub interval: Duration,
    /// Default 5 s, but never more than `interval`.
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
    /// Immediate re-tries before a probe counts as failed.
    pub retries: u32,
    pub consecutive_up: u32,
    pub consecutive_down: u32,
    /// `https` only: skip certificate verification (Cloudflare's field of that name).
    pub allow_insecure: bool,
    /// `grpc` only: the service a `grpc.health.v1.Health/Check` asks about;
    /// empty (default): the whole server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grpc_service: String,
}

/// The reader's defaults: `GET /` over HTTP every 60 s, timeout 5 s.
impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            name: String::new(),
            r#type: MonitorType::Http,
            method: "GET".to_string(),
            path: "/".to_string(),
            port: 0,
            expected_codes: ExpectedCodes(vec![CodePattern::Exact(200)]),
            expected_body: String::new(),
            header: BTreeMap::new(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            retries: 2,
            consecutive_up: 1,
            consecutive_down: 1,
            allow_insecure: false,
            grpc_service: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorType {
    Http,
    Https,
    Tcp,
    /// `grpc.health.v1.Health/Check` over HTTP/2 (docs/health-checks.md).
    Grpc,
}

/// `"200"`, `"2xx"`, `"200,301"`, `"2xx,302"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCodes(pub Vec<CodePattern>);

/// Written as the file spells it: `"200,2xx"`.
impl Serialize for ExpectedCodes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let codes: Vec<String> = self
            .0
            .iter()
            .map(|p| match *p {
                CodePattern::Exact(code) => code.to_string(),
                CodePattern::Class(class) => format!("{class}xx"),
            })
            .collect();
        s.serialize_str(&codes.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePattern {
    Exact(u16),
    /// `2xx` is `Class(2)`.
    Class(u16),
}

impl ExpectedCodes {
    /// As the file spells them (`"200"`, `"2xx,302"`); `None`: not codes.
    pub fn parse(s: &str) -> Option<ExpectedCodes> {
        let mut out = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let b = item.as_bytes();
            if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
                return None;
            }
            let class = u16::from(b[0] - b'0');
            if b[1..].eq_ignore_ascii_case(b"xx") {
                out.push(CodePattern::Class(class));
            } else if b[1..].iter().all(u8::is_ascii_digit) {
                out.push(CodePattern::Exact(item.parse().ok()?));
            } else {
                return None;
            }
        }
        Some(ExpectedCodes(out))
    }

    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|p| match *p {
            CodePattern::Exact(code) => code == status,
            CodePattern::Class(class) => status / 100 == class,
        })
    }
}
