//! The request's decisions: which load balancer, pool and endpoint serve a
//! request, and what its session says. Pure over the state and plain facts
//! (time and randomness passed in); the proxy (`src/proxy/`) connects them
//! to Pingora.
//!
//! - [`request`]: facts about a request: the host it names, whether its
//!   `Host` and `Transfer-Encoding` are acceptable, its forwarding headers.
//! - [`select`]: the selector: steering over pools and endpoints, failover.
//! - [`sticky`]: session affinity over the selector: pins, drains, repins,
//!   and the decision each request is counted under.

pub mod request;
pub mod select;
pub mod sticky;
