//! The configuration's tests, one file per section, and their fixtures.

mod cluster;
mod load;
mod load_balancer;
mod monitor;
mod pool;

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
