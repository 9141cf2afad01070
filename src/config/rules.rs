//! A load balancer's `rules`: Cloudflare's load balancing rules, read
//! strictly (every error under its key path; a condition's with its column),
//! and [`apply_overrides`], the load balancer a set of matching rules
//! routes by.

use std::collections::BTreeSet;

use serde_yaml::{Mapping, Value};

use super::load_balancer::{load_balancer_to_value, read_load_balancer};
use super::model::{FixedResponse, LoadBalancer, Rule};
use super::read::{all, name_ok, quote, ConfigErrors, Errors, Node};
use crate::rules::parse::parse;

/// The keys of a rule.
pub const RULE_KEYS: &[&str] = &[
    "name",
    "condition",
    "priority",
    "disabled",
    "terminates",
    "overrides",
    "fixed_response",
];

/// The load balancer keys a rule's `overrides` may set: those of
/// Cloudflare's `overrides` object that Tether has.
pub const OVERRIDE_KEYS: &[&str] = &[
    "default_pools",
    "fallback_pool",
    "steering_policy",
    "random_steering",
    "session_affinity",
    "session_affinity_ttl",
    "session_affinity_attributes",
    "adaptive_routing",
];

/// The keys of `fixed_response`.
pub const FIXED_RESPONSE_KEYS: &[&str] =
    &["status_code", "location", "content_type", "message_body"];

/// Most rules one load balancer may have (a request's matching rules are a
/// 64-bit set).
pub const MAX_RULES: usize = 64;

/// `rules`: the list, each rule checked alone; names unique.
pub(super) fn read_rules(node: &Node<'_>, errs: &mut Errors) -> Option<Vec<Rule>> {
    let items = node.list(errs)?;
    if items.len() > MAX_RULES {
        errs.at(
            node,
            format!("at most {MAX_RULES} rules, got {}", items.len()),
        );
        return None;
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    all(items.iter().enumerate().map(|(i, item)| {
        // Names are compared whatever else is wrong with either rule.
        let name = item.value.get("name").and_then(Value::as_str);
        let duplicate = match name {
            Some(name) => match seen.iter().find(|(n, _)| n == name) {
                Some((_, j)) => {
                    errs.at(
                        item,
                        format!("duplicate rule name {} (also rules[{j}])", quote(name)),
                    );
                    true
                }
                None => {
                    seen.push((name.to_string(), i));
                    false
                }
            },
            None => false,
        };
        let rule = read_rule(item, errs)?;
        (!duplicate).then_some(rule)
    }))
}

fn read_rule(node: &Node<'_>, errs: &mut Errors) -> Option<Rule> {
    let o = node.object(errs, RULE_KEYS)?;
    let name = o.req(errs, "name").and_then(|n| {
        let s = n.str(errs)?;
        if name_ok(s) {
            Some(s.to_string())
        } else {
            errs.at(
                n,
                format!(
                    "a rule name must use only letters, digits, \"_\", \".\" and \"-\", got {}",
                    quote(s)
                ),
            );
            None
        }
    });
    let condition = match o.opt("condition") {
        None => Some(String::new()),
        Some(n) => n.str(errs).and_then(|s| match parse(s) {
            Ok(_) => Some(s.to_string()),
            Err(e) => {
                errs.at(n, format!("invalid condition: {e}"));
                None
            }
        }),
    };
    let priority = o.int_or(errs, "priority", 0, i64::from(u32::MAX), 0);
    let disabled = o.bool_or(errs, "disabled", false);
    let terminates = o.bool_or(errs, "terminates", false);
    let overrides = match o.opt("overrides") {
        None => Some(Mapping::new()),
        Some(n) => n.object(errs, OVERRIDE_KEYS).and_then(|_| match n.value {
            Value::Mapping(m) => Some(m.clone()),
            _ => None,
        }),
    };
    let fixed_response = match o.opt("fixed_response") {
        None => Some(None),
        Some(n) => read_fixed_response(n, errs).map(Some),
    };
    if let (Some(n), Some(m)) = (o.opt("fixed_response"), &overrides) {
        if !m.is_empty() {
            errs.at(
                n,
                "a rule either answers (fixed_response) or routes (overrides), not both",
            );
            return None;
        }
    }
    let fixed_response = fixed_response?;
    Some(Rule {
        name: name?,
        condition: condition?,
        priority: u32::try_from(priority?).unwrap_or(u32::MAX),
        disabled: disabled?,
        // Cloudflare: a rule with a fixed response terminates.
        terminates: terminates? || fixed_response.is_some(),
        overrides: overrides?,
        fixed_response,
    })
}

fn read_fixed_response(node: &Node<'_>, errs: &mut Errors) -> Option<FixedResponse> {
    let o = node.object(errs, FIXED_RESPONSE_KEYS)?;
    // A final status: a 1xx is not a response (101 would leave the
    // connection waiting for a protocol that never starts).
    let status_code = o.int_or(errs, "status_code", 200, 599, 200);
    let location = o.opt_str(errs, "location");
    let content_type = o.opt_str(errs, "content_type").and_then(|c| {
        let c = c.unwrap_or("text/plain");
        if http::HeaderValue::from_str(c).is_ok() {
            Some(c.to_string())
        } else {
            errs.at(node, "content_type must be a valid header value");
            None
        }
    });
    let location = location.and_then(|l| match l {
        Some(l) if http::HeaderValue::from_str(l).is_err() => {
            errs.at(node, "location must be a valid header value");
            None
        }
        l => Some(l.map(str::to_string)),
    });
    let message_body = o.opt_str(errs, "message_body");
    // 204 and 304 have no body (RFC 9110 15.3.5, 15.4.5): a body given for
    // one would never be sent.
    if let (Some(code @ (204 | 304)), Some(Some(body)), Some(at)) =
        (status_code, message_body, o.opt("message_body"))
    {
        if !body.is_empty() {
            errs.at(
                at,
                format!(
                    "a {code} response has no body: remove message_body or use another status_code"
                ),
            );
            return None;
        }
    }
    Some(FixedResponse {
        status_code: u16::try_from(status_code?).unwrap_or(200),
        location: location?,
        content_type: content_type?,
        message_body: message_body?.unwrap_or("").to_string(),
    })
}

/// Checks every rule's `overrides` laid over `lb` (whatever else is wrong
/// with the rule), reporting under the rule's `overrides` path.
pub(super) fn check_overrides(
    lb: &LoadBalancer,
    rules_node: &Node<'_>,
    pools: Option<&BTreeSet<String>>,
    errs: &mut Errors,
) {
    let Some(items) = rules_node.list(&mut Errors::new()) else {
        return;
    };
    for item in items {
        let Some(o) = item.object(&mut Errors::new(), RULE_KEYS) else {
            continue;
        };
        let Some(at) = o.opt("overrides") else {
            continue;
        };
        let Value::Mapping(overrides) = at.value else {
            continue;
        };
        // Unknown keys are the rule reader's to report.
        let known: Mapping = overrides
            .iter()
            .filter(|(k, _)| k.as_str().is_some_and(|k| OVERRIDE_KEYS.contains(&k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let merged = overlay(lb, &[&known]);
        let node = Node::new(&merged, at.path.clone(), at.order.clone());
        read_load_balancer(&node, Some(lb.name.clone()), pools, errs);
    }
}

/// `lb` with `overrides` laid over it in order (a later rule's key replaces
/// an earlier one's), without rules. Changing `session_affinity` without
/// `session_affinity_ttl` lets the TTL default for the new type.
fn overlay(lb: &LoadBalancer, overrides: &[&Mapping]) -> Value {
    let mut base = match load_balancer_to_value(lb) {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    };
    base.remove("rules");
    for o in overrides {
        if o.contains_key("session_affinity") && !o.contains_key("session_affinity_ttl") {
            base.remove("session_affinity_ttl");
        }
        for (k, v) in o.iter() {
            base.insert(k.clone(), v.clone());
        }
    }
    Value::Mapping(base)
}

/// The load balancer that routes a request matched by rules whose
/// `overrides` are `overrides` (in the order they ran): `lb`'s settings with
/// theirs laid over, and no rules of its own.
pub fn apply_overrides(
    lb: &LoadBalancer,
    overrides: &[&Mapping],
) -> Result<LoadBalancer, ConfigErrors> {
    let merged = overlay(lb, overrides);
    let mut errs = Errors::new();
    let node = Node::new(&merged, "", vec![]);
    let out = read_load_balancer(&node, Some(lb.name.clone()), None, &mut errs);
    errs.finish(out)
}

/// The value [`read_rules`] turns back into `rules`.
pub(super) fn rules_to_value(rules: &[Rule]) -> Value {
    fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }
    Value::Sequence(
        rules
            .iter()
            .map(|r| {
                let mut m = Mapping::new();
                m.insert(s("name"), s(&r.name));
                m.insert(s("condition"), s(&r.condition));
                m.insert(s("priority"), Value::from(r.priority));
                m.insert(s("disabled"), Value::Bool(r.disabled));
                m.insert(s("terminates"), Value::Bool(r.terminates));
                if !r.overrides.is_empty() {
                    m.insert(s("overrides"), Value::Mapping(r.overrides.clone()));
                }
                if let Some(f) = &r.fixed_response {
                    let mut fm = Mapping::new();
                    fm.insert(s("status_code"), Value::from(f.status_code));
                    if let Some(l) = &f.location {
                        fm.insert(s("location"), s(l));
                    }
                    fm.insert(s("content_type"), s(&f.content_type));
                    fm.insert(s("message_body"), s(&f.message_body));
                    m.insert(s("fixed_response"), Value::Mapping(fm));
                }
                Value::Mapping(m)
            })
            .collect(),
    )
}
