//! Health monitors on Pingora's health-check framework
//! (`pingora::lb::health_check`).
//!
//! - [`check::MonitorCheck`] is a Cloudflare monitor as a Pingora
//!   [`HealthCheck`](pingora::lb::health_check::HealthCheck): its `check` is
//!   one probe ([`probe::NetProbe`]: `http`, `https` or `tcp`) re-tried
//!   `retries` times at once, and records the endpoint's last check and RTT;
//!   its `health_threshold` is `consecutive_up` / `consecutive_down`; its
//!   `health_status_change` sets Tether's health atomic
//!   ([`EndpointState::set_healthy`](crate::state::EndpointState::set_healthy))
//!   and logs the flip with its reason.
//! - Each endpoint is a Pingora `Backend` whose `ext` carries its
//!   [`check::Target`] (pool, endpoint, `Pick`, Tether id), published by a
//!   `BackendView` into a `HealthRegistry` built `with_equivalence` on that id,
//!   so health is never keyed by Pingora's `(addr, weight)` hash and two pools
//!   may share an address.
//! - Pingora's registry does the counting: its consecutive counter is the
//!   former `Streak` exactly (disagreeing results count up, an agreeing one
//!   resets, the flip resets), and endpoints start healthy.
//! - [`service::Monitors`] is the one Pingora background service. It gives
//!   every endpoint a registry of its own and runs one pass of it at once and
//!   every `interval` on tokio's clock. That ticker is the only scheduling
//!   Tether keeps: Pingora's `HealthCheckService` starts the next pass
//!   `interval` after the previous one *ended* and times it with
//!   `std::time::Instant`, and a registry shared by several endpoints waits for
//!   its slowest target before the next pass; either would change when probes
//!   run (see `docs/health-checks.md`).

pub mod check;
pub mod grpc;
pub mod probe;
pub mod service;

pub use service::{LiveMonitors, Monitors};

/// The log target of flips and of the service, as before the move to
/// Pingora's framework (`RUST_LOG=tether::monitor=...` keeps working).
pub(crate) const LOG_TARGET: &str = "tether::monitor";
