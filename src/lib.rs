//! Tether: a self-hosted sticky load balancer on Pingora. The binary
//! (`src/main.rs`) wires these rooms into a Pingora server; the library form
//! exists so benchmarks and fuzz targets reach the pure pieces directly.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod affinity;
pub mod balance;
pub mod changes;
pub mod cli;
pub mod clock;
pub mod cloudflare;
pub mod cluster;
pub mod config;
pub mod front_door;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod rules;
pub mod services;
pub mod state;
pub mod text;
