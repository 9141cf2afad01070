//! Configuration in layers, each depending only on those below it:
//!
//! 1. [`read`]: the strict YAML reader, the error collector, shared helpers.
//! 2. [`model`] (the typed configuration the rest reads), `spelling`, and
//!    [`pem`] (a certificate chain with its key, read and checked to fit).
//! 3. The section readers: `load_balancer` (above `rules`, a load balancer's
//!    rule list: the rules' overrides are laid over a load balancer there),
//!    `pool`, `monitor`, `cluster` — a pure walk. A rule's condition is
//!    parsed by `crate::rules::parse`, which imports nothing of config.
//! 4. [`load`]: the whole file (Pingora's keys and `tether:`), then
//!    `checks`: files read and host names resolved after the walk.

mod checks;
mod cluster;
pub mod load;
mod load_balancer;
pub mod model;
mod monitor;
pub mod object_kind;
pub mod objects;
pub mod pem;
mod pool;
pub mod read;
mod rules;
mod spelling;

pub use checks::directory;
pub use cluster::{key_secret, MIN_KEY_BYTES};
pub use load::{load_file, load_str, Loaded};
pub use load_balancer::{
    apply_overrides, load_balancer_from_value, load_balancer_to_value, runtime_fields,
    runtime_keys, Settable, ATTRIBUTES, ATTRIBUTE_KEYS, LOAD_BALANCER_KEYS, TABLE_TTL_MAX_SECS,
};
pub use model::*;
pub use read::{ConfigError, ConfigErrors};
pub use rules::OVERRIDE_KEYS;
pub use spelling::Spelled;

#[cfg(test)]
mod tests;
