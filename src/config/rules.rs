//! A load balancer's `rules`: Cloudflare's load balancing rules, read
//! strictly (every error under its key path; a condition's with its column)
//! and written back. Below the load balancer reader: a rule's `overrides`
//! are checked, and laid over a load balancer, in `load_balancer.rs`, which
//! imports this file and never the reverse. A condition is parsed by
//! [`crate::rules::parse`], the ground floor (it imports nothing of config).

use serde_yaml::{Mapping, Value};

use super::model::{FixedResponse, Rule};
use super::read::{all, name_ok, quote, Errors, Node};
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
