//! Load balancing rules (Cloudflare's, docs/rules.md): a load balancer's
//! rules compiled once when the state is built, and evaluated per request.
//! Pure: a request's facts in, which rules applied out. The state turns the
//! matching rules' overrides into the load balancer the request routes by
//! (`State::ruled`); the proxy answers a fixed response itself.
//!
//! - **Order**: by `priority` (lower first), equal priorities in file order;
//!   disabled rules are left out.
//! - **Matching**: every enabled rule whose condition holds applies, in
//!   order; its `overrides` are laid over the load balancer (a later rule's
//!   key replaces an earlier one's). A matching rule that `terminates`
//!   stops the evaluation; one with a `fixed_response` terminates and
//!   answers.
//! - **Path**: rules read the request's path normalised ([`path`]); the
//!   request goes upstream as sent.

use std::sync::Arc;

use crate::config;

pub mod eval;
pub mod expr;
pub mod parse;
pub mod path;

pub use eval::Request;
pub use path::{normalise_path, normalise_uri};

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    /// Its index in the load balancer's `rules` (file order).
    pub index: usize,
    pub condition: expr::Expr,
    pub terminates: bool,
    pub fixed_response: Option<config::FixedResponse>,
    /// It has `overrides`.
    pub overrides: bool,
}

/// A load balancer's rules in the order they run.
#[derive(Debug, Default)]
pub struct Rules {
    pub list: Vec<Rule>,
}

/// What a load balancer's rules decided for one request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'r> {
    /// No rule matched (or none that changes anything).
    None,
    /// Answer with this rule's fixed response.
    Fixed(&'r Rule, &'r config::FixedResponse),
    /// Route by the load balancer with these rules' overrides laid over
    /// it: a bit per rule, by file index; `last` is the last rule that
    /// matched.
    Routed { overrides: u64, last: &'r Rule },
}

impl Outcome<'_> {
    /// The name of the rule that applied (the last that matched).
    pub fn rule(&self) -> Option<&Arc<str>> {
        match self {
            Outcome::None => None,
            Outcome::Fixed(rule, _) | Outcome::Routed { last: rule, .. } => Some(&rule.name),
        }
    }
}

impl Rules {
    /// Compiles `rules` (already validated: a condition that no longer
    /// parses is logged and its rule left out).
    pub fn compile(lb: &str, rules: &[config::Rule]) -> Rules {
        let mut list: Vec<Rule> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.disabled)
            .filter_map(|(index, r)| match parse::parse(&r.condition) {
                Ok(condition) => Some(Rule {
                    name: Arc::from(r.name.as_str()),
                    index,
                    condition,
                    terminates: r.terminates || r.fixed_response.is_some(),
                    fixed_response: r.fixed_response.clone(),
                    overrides: !r.overrides.is_empty(),
                }),
                Err(e) => {
                    log::error!("load balancer {lb} rule {}: {e}; rule left out", r.name);
                    None
                }
            })
            .collect();
        let priority = |i: usize| rules.get(i).map_or(u32::MAX, |r| r.priority);
        // Stable: equal priorities keep file order.
        list.sort_by_key(|r| priority(r.index));
        Rules { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Runs the rules over `req`.
    pub fn evaluate(&self, req: &Request<'_>) -> Outcome<'_> {
        let mut overrides = 0u64;
        let mut last = None;
        for rule in &self.list {
            if !eval::eval(&rule.condition, req) {
                continue;
            }
            if let Some(fixed) = &rule.fixed_response {
                return Outcome::Fixed(rule, fixed);
            }
            if rule.overrides {
                overrides |= 1u64 << (rule.index % 64);
            }
            last = Some(rule);
            if rule.terminates {
                break;
            }
        }
        match last {
            None => Outcome::None,
            Some(last) => Outcome::Routed { overrides, last },
        }
    }
}

#[cfg(test)]
mod tests;
