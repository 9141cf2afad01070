//! Pure balancing decisions: pool health and order, endpoint picks, stable
//! weighted hashing. No I/O, no clocks, no globals: plain data in, a choice out.
//!
//! - [`hash`]: the fixed, documented 64-bit hash every instance agrees on.
//! - [`ring`]: consistent, weighted hashing of a session key onto endpoints.
//! - [`pick`]: weighted random and least-loaded choice among endpoints.
//! - [`steering`]: ordering a load balancer's pools; pool health.
//! - [`shed`]: load shedding's draws and shares.
//! - [`outlier`]: passive health, one endpoint's ejection state machine.
//! - [`slow_start`]: the admitted share of an endpoint that just became usable.

pub mod hash;
pub mod outlier;
pub mod pick;
pub mod ring;
pub mod shed;
pub mod slow_start;
pub mod steering;
