//! The validated, typed configuration: what the rest of Tether reads.
//!
//! Field names equal the YAML keys under `tether:` so that `grep` links the
//! documentation, the file and the code. Every value here has already been
//! checked by [`super::load`]; nothing downstream re-validates.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything under the `tether:` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listeners: Vec<Listener>,
    pub admin: Option<Admin>,
    pub cookie_keys_file: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    /// Bound of the `header` / `source_ip` session table (default 1,000,000).
    pub max_sessions: usize,
    /// `true`: responses carry `X-Tether-Decision`.
    pub decision_header: bool,
    /// Tether's own upstream timeouts (the spec is silent; see docs/configuration.md).
    pub upstream_timeouts: UpstreamTimeouts,
    /// What one client may hold and send (docs/configuration.md, "Client limits").
    pub client_limits: ClientLimits,
    /// `tether.access_log`: how each request's access-log line is written
    /// (docs/operations.md, "Access log").
    pub access_log: AccessLog,
    /// `tether.dns_refresh`: how often endpoints whose address is a host
    /// name are resolved again (default 60 s).
    pub dns_refresh: Duration,
    /// Keyed by host name, lower-cased; `"*"` is the catch-all.
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub pools: BTreeMap<String, Pool>,
    pub monitors: BTreeMap<String, Monitor>,
    /// `tether.cluster`: `None` is the single process (docs/replicas.md).
    pub cluster: Option<Cluster>,
}

/// `tether.cluster`: replicas with the same `name` are one load balancer.
#[derive(Debug, Clone, PartialEq)]
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
    pub ca_file: Option<PathBuf>,
    /// The Redis ACL user (with `password_file`).
    pub username: Option<String>,
    /// The Redis password (or the ACL user's), trimmed.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Kept as written: Pingora's hot upgrade matches listen addresses as strings.
    pub address: String,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub address: String,
    pub token_file: Option<PathBuf>,
}

/// `tether.access_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLimits {
    /// Open client connections per process; past it new ones are closed at
    /// once. Default 10,000.
    pub max_connections: usize,
    /// From a connection's accept (or a request's first byte on a kept-alive
    /// connection) to its complete request header; exceeded → 408. Default 10 s.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request; then
    /// it is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Largest request header (request line and fields); larger → 431.
    /// Default 65,536.
    pub max_request_header_bytes: usize,
    /// The longest wait for the next bytes of a request body; exceeded →
    /// 408. Default 30 s.
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpstreamTimeouts {
    /// TCP connect to an endpoint; a failure is retried elsewhere (SPEC 4.4). Default 5 s.
    pub connect: Duration,
    /// Longest wait for the endpoint's next bytes; exceeded → 504. Default 100 s.
    pub read: Duration,
    /// Longest wait to write to the endpoint. Default 100 s.
    pub write: Duration,
    /// How long an idle kept-alive upstream connection stays pooled. Default 90 s.
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

#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    /// The host it serves, lower-case, or `"*"`.
    pub name: String,
    pub enabled: bool,
    /// Failover order; every name exists in [`Config::pools`].
    pub default_pools: Vec<String>,
    pub fallback_pool: Option<String>,
    pub steering_policy: SteeringPolicy,
    pub random_steering: RandomSteering,
    pub session_affinity: SessionAffinity,
    /// Whole seconds in the file; already defaulted per type (SPEC 4.1).
    /// Zero when affinity is off.
    pub session_affinity_ttl: Duration,
    pub session_affinity_attributes: SessionAffinityAttributes,
    pub adaptive_routing: AdaptiveRouting,
    pub always_use_https: bool,
    /// Cloudflare's load balancing rules, in file order (docs/rules.md).
    pub rules: Vec<Rule>,
}

/// One load balancing rule (Cloudflare's object, same field names).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique within its load balancer; names the rule in the log, the
    /// metrics and `X-Tether-Decision`.
    pub name: String,
    /// In Cloudflare's Rules language, as written; already parsed once by
    /// the reader, so it compiles. Empty: every request.
    pub condition: String,
    /// Lower runs first; equal priorities keep file order. Default 0.
    pub priority: u32,
    pub disabled: bool,
    /// A matching rule stops the evaluation (always so with `fixed_response`).
    pub terminates: bool,
    /// Load balancer keys (top level) that replace the load balancer's own
    /// while the rule applies, as written; validated over the load balancer.
    pub overrides: serde_yaml::Mapping,
    pub fixed_response: Option<FixedResponse>,
}

/// `fixed_response`: the rule answers the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedResponse {
    /// Default 200.
    pub status_code: u16,
    /// `Location` header, when given.
    pub location: Option<String>,
    /// Default `text/plain`.
    pub content_type: String,
    pub message_body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteeringPolicy {
    /// `""` or `off`: the listed order (active–passive failover).
    Off,
    Random,
    LeastOutstandingRequests,
    DynamicLatency,
}

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionAffinity {
    /// `""` or `none`.
    None,
    Cookie,
    IpCookie,
    Header,
    SourceIp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionAffinityAttributes {
    pub samesite: SameSite,
    pub secure: Secure,
    /// Whole seconds in the file; zero: disabling is immediate.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdaptiveRouting {
    pub failover_across_pools: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub enabled: bool,
    /// The health threshold: at least this many enabled, healthy endpoints. Default 1.
    pub minimum_origins: usize,
    /// Every name exists in [`Config::monitors`].
    pub monitor: Option<String>,
    pub origin_steering: OriginSteering,
    /// In file order; names unique within the pool.
    pub endpoints: Vec<Endpoint>,
    /// Cloudflare's `load_shedding`; all zero: nothing is shed.
    pub load_shedding: LoadShedding,
    /// Passive health; `None`: live traffic never ejects an endpoint.
    pub outlier_detection: Option<OutlierDetection>,
    /// An endpoint that becomes usable takes a linearly growing share of new
    /// sessions over this window; zero: at once. Whole seconds in the file.
    pub slow_start: Duration,
    /// `read_timeout`: the longest wait for the next bytes from this pool's
    /// endpoints (long polls, server-sent events, idle WebSockets);
    /// `None`: `tether.upstream_timeouts.read`. Seconds in the file.
    pub read_timeout: Option<Duration>,
}

/// `outlier_detection`: live requests' failures eject an endpoint for a while
/// (docs/health-checks.md, "Passive health").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    /// 5xx answers in a row that eject; 0: off. Default 5.
    pub consecutive_5xx: u32,
    /// 502/503/504, connect errors and timeouts in a row that eject; 0: off. Default 3.
    pub consecutive_gateway_failure: u32,
    /// The first ejection's length; doubles on each repeat. Default 30 s.
    pub base_ejection_time: Duration,
    /// Most of the pool's endpoints ejected at once, percent. Default 50.
    pub max_ejection_percent: f64,
}

/// `load_shedding`: shares of a pool's traffic sent to the next pool in the
/// load balancer's order (docs/routing.md, "Load shedding").
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadShedding {
    /// Percent (0..=100) of new sessions and of traffic without affinity.
    pub default_percent: f64,
    pub default_policy: ShedPolicy,
    /// Percent (0..=100) of existing sessions pinned to the pool.
    pub session_percent: f64,
    /// Always `Hash` (Cloudflare's only value).
    pub session_policy: ShedPolicy,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OriginSteering {
    Random,
    Hash,
    LeastOutstandingRequests,
    LeastConnections,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: String,
    /// As written (`10.0.0.1:8080` or `host:8080`).
    pub address: String,
    /// Resolved once at load time.
    pub socket_addr: SocketAddr,
    /// 0.0 ..= 1.0; 0 takes no new sessions.
    pub weight: f64,
    pub enabled: bool,
    /// `header: { Host: [...] }`: the Host sent upstream, when given.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
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
    pub header: BTreeMap<String, Vec<String>>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Immediate re-tries before a probe counts as failed.
    pub retries: u32,
    pub consecutive_up: u32,
    pub consecutive_down: u32,
    /// `https` only: skip certificate verification (Cloudflare's field of that name).
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorType {
    Http,
    Https,
    Tcp,
}

/// `"200"`, `"2xx"`, `"200,301"`, `"2xx,302"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCodes(pub Vec<CodePattern>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePattern {
    Exact(u16),
    /// `2xx` is `Class(2)`.
    Class(u16),
}

impl ExpectedCodes {
    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|p| match *p {
            CodePattern::Exact(code) => code == status,
            CodePattern::Class(class) => status / 100 == class,
        })
    }
}
