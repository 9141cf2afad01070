//! Configuration in layers, each depending only on those below it:
//!
//! 1. [`read`]: the strict YAML reader, the error collector, shared helpers.
//! 2. [`model`] (the typed configuration the rest reads) and `spelling`.
//! 3. The section readers: `load_balancer`, `pool`, `monitor` — a pure walk.
//! 4. [`load`]: the whole file (Pingora's keys and `tether:`), then
//!    `checks`: files read and host names resolved after the walk.

mod checks;
pub mod load;
mod load_balancer;
pub mod model;
mod monitor;
mod pool;
pub mod read;
mod spelling;

pub use load::{load_file, load_str, Loaded};
pub use load_balancer::{
    load_balancer_from_value, load_balancer_to_value, runtime_fields, Settable, ATTRIBUTES,
    ATTRIBUTE_KEYS, LOAD_BALANCER_KEYS,
};
pub use model::*;
pub use read::{ConfigError, ConfigErrors};
pub use spelling::Spelled;

/// Fixtures shared by the configuration tests.
#[cfg(test)]
mod test_support {
    use super::load::{load_str, Loaded};

    pub(super) const MINIMAL: &str = r#"
tether:
  listeners:
    - address: "127.0.0.1:8080"
  load_balancers:
    "*":
      default_pools: [primary]
  pools:
    primary:
      endpoints:
        - { name: web-1, address: "127.0.0.1:9001" }
"#;

    pub(super) fn errors(yaml: &str) -> Vec<String> {
        match load_str(yaml) {
            Ok(_) => panic!("expected errors, the configuration loaded:\n{yaml}"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The minimal file with one load balancer's extra lines (indented 6).
    pub(super) fn with_lb(lines: &str) -> String {
        let lines: String = lines.lines().map(|l| format!("      {l}\n")).collect();
        MINIMAL.replace(
            "      default_pools: [primary]\n",
            &format!("      default_pools: [primary]\n{lines}"),
        )
    }

    pub(super) fn ok(yaml: &str) -> Loaded {
        load_str(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
    }
}
