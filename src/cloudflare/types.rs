//! Cloudflare's Load Balancing objects, field for field as its v4 API
//! returns and accepts them (and as the official SDKs' types declare them).
//! Every field is optional, as in the API's schema: a `POST` names what it
//! sets, a `PATCH` what it changes. Fields Cloudflare has that Tether does
//! not honour are kept as they came (`Json`) so they can be named, echoed or
//! refused; any other key lands in `other` and is named too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// `GET /accounts/{account_id}/load_balancers/monitors/{monitor_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
    /// `http`, `https`, `tcp` (Tether's), `udp_icmp`, `icmp_ping`, `smtp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_codes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_up: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_down: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_zone: Option<String>,
    /// Keys Cloudflare's monitor does not have.
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// `GET /accounts/{account_id}/load_balancers/pools/{pool_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_origins: Option<u64>,
    /// The monitor's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_steering: Option<OriginSteering>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<Origin>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_shedding: Option<LoadShedding>,
    // Accepted, not honoured (Cloudflare's network and notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_regions: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_email: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_filter: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_sources: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_group: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Json>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginSteering {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadShedding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// One of a pool's `origins`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An IP address or a host name, without a port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// 0 or absent: the protocol's default port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<OriginHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_network_id: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten_cname: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Json>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// An origin's `header`: only `Host`, one value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginHeader {
    #[serde(rename = "Host", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// `GET /zones/{zone_id}/load_balancers/{load_balancer_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
    /// The host it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pool IDs, in failover order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_steering: Option<RandomSteering>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_ttl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_attributes: Option<SessionAffinityAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_routing: Option<AdaptiveRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    // Accepted, not honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_pools: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_pools: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop_pools: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_strategy: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_sets: Option<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<Json>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RandomSteering {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_weight: Option<f64>,
    /// Pool ID → weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_weights: Option<BTreeMap<String, f64>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAffinityAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samesite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_downtime_failover: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_all_headers: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_across_pools: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// One of a load balancer's `rules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminates: Option<bool>,
    /// Load balancer fields, pools by ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<serde_json::Map<String, Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// What `tether export --cloudflare` prints and `tether import --cloudflare`
/// reads: each object as the API's `result`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Export {
    #[serde(default)]
    pub monitors: Vec<Monitor>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancer>,
}
