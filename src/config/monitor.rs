//! The `tether.monitors` section: health monitors and their expected
//! status codes.

use super::model::*;
use super::read::{all, check_entry_name, fmt_num, quote, Errors, Node};
use super::spelling::Spelled;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const MONITOR_KEYS: &[&str] = &[
    "type",
    "method",
    "path",
    "port",
    "expected_codes",
    "expected_body",
    "header",
    "interval",
    "timeout",
    "retries",
    "consecutive_up",
    "consecutive_down",
    "allow_insecure",
    "grpc_service",
];

pub(super) fn read_monitors(
    node: &Node<'_>,
    errs: &mut Errors,
) -> Option<BTreeMap<String, Monitor>> {
    let entries = node.map(errs)?;
    let read: Vec<Option<(String, Monitor)>> = entries
        .iter()
        .map(|(name, n)| {
            let name_ok = check_entry_name("monitor", name, n, errs);
            let monitor = read_monitor(n, name, errs)?;
            name_ok.then(|| (name.to_string(), monitor))
        })
        .collect();
    read.into_iter().collect()
}

/// `"200"`, `"2xx"`, `"200,301"`: codes 100..=599 or classes 1xx..=5xx.
fn parse_codes(s: &str) -> Option<ExpectedCodes> {
    ExpectedCodes::parse(s)
}

fn read_monitor(node: &Node<'_>, name: &str, errs: &mut Errors) -> Option<Monitor> {
    let o = node.object(errs, MONITOR_KEYS)?;
    let r#type = o.choice_or(errs, "type", MonitorType::SPELLINGS, MonitorType::Http);
    let method = match o.opt("method") {
        None => Some("GET".to_string()),
        Some(n) => n.str(errs).and_then(|m| {
            let token = !m.is_empty() && http::Method::from_bytes(m.as_bytes()).is_ok();
            if token && !m.bytes().any(|b| b.is_ascii_lowercase()) {
                Some(m.to_string())
            } else {
                errs.at(
                    n,
                    format!(
                        "must be an HTTP method in capitals such as GET or HEAD, got {}",
                        quote(m)
                    ),
                );
                None
            }
        }),
    };
    let path = match o.opt("path") {
        None => Some("/".to_string()),
        Some(n) => n.str(errs).and_then(|p| {
            if !p.starts_with('/') {
                errs.at(n, format!("must start with \"/\", got {}", quote(p)));
                None
            } else if p.parse::<http::uri::PathAndQuery>().is_err() {
                errs.at(n, format!("not a valid request path: {}", quote(p)));
                None
            } else {
                Some(p.to_string())
            }
        }),
    };
    let port = o.int_or(errs, "port", 0, 65_535, 0);
    let expected_codes = match o.opt("expected_codes") {
        None => Some(ExpectedCodes(vec![CodePattern::Exact(200)])),
        Some(n) => {
            // `expected_codes: 200` (a YAML integer) reads as "200".
            let text = match n.value {
                Value::Number(num) if num.is_u64() => Some(num.to_string()),
                _ => n.str(errs).map(str::to_string),
            };
            text.and_then(|t| {
                let codes = parse_codes(&t);
                if codes.is_none() {
                    errs.at(
                        n,
                        format!(
                            "must be status codes (100-599) or classes (1xx-5xx) separated by commas, such as \"200\", \"2xx\" or \"200,301\"; got {}",
                            quote(&t)
                        ),
                    );
                }
                codes
            })
        }
    };
    let expected_body = o
        .opt_str(errs, "expected_body")
        .map(|b| b.unwrap_or("").to_lowercase());
    let header = match o.opt("header") {
        None => Some(BTreeMap::new()),
        Some(n) => read_monitor_headers(n, errs),
    };
    let interval = o.number_or(errs, "interval", 0.05, 3600.0, 60.0);
    let timeout = match o.opt("timeout") {
        // Default 5 s, but never more than the interval.
        None => interval.map(|i| i.min(5.0)),
        Some(n) => n.number(errs, 0.05, 3600.0).and_then(|t| match interval {
            Some(i) if t > i => {
                errs.at(
                    n,
                    format!(
                        "must not exceed interval ({}), got {}",
                        fmt_num(i),
                        fmt_num(t)
                    ),
                );
                None
            }
            _ => Some(t),
        }),
    };
    let retries = o.int_or(errs, "retries", 0, 5, 2);
    let consecutive_up = o.int_or(errs, "consecutive_up", 1, 100, 1);
    let consecutive_down = o.int_or(errs, "consecutive_down", 1, 100, 1);
    let allow_insecure = o.bool_or(errs, "allow_insecure", false);
    // Any string: gRPC service names are the proto package and service
    // (`package.Service`), and the health service answers SERVICE_UNKNOWN
    // (unhealthy) for one it does not know.
    let grpc_service = o.opt_str(errs, "grpc_service");
    Some(Monitor {
        name: name.to_string(),
        r#type: r#type?,
        method: method?,
        path: path?,
        port: port? as u16,
        expected_codes: expected_codes?,
        expected_body: expected_body?,
        header: header?,
        interval: Duration::from_secs_f64(interval?),
        timeout: Duration::from_secs_f64(timeout?),
        retries: retries? as u32,
        consecutive_up: consecutive_up? as u32,
        consecutive_down: consecutive_down? as u32,
        allow_insecure: allow_insecure?,
        grpc_service: grpc_service?.unwrap_or_default().to_string(),
    })
}

fn read_monitor_headers(
    node: &Node<'_>,
    errs: &mut Errors,
) -> Option<BTreeMap<String, Vec<String>>> {
    let entries = node.map(errs)?;
    let read: Vec<Option<(String, Vec<String>)>> = entries
        .iter()
        .map(|(key, n)| {
            let name_ok = http::HeaderName::from_bytes(key.as_bytes()).is_ok();
            if !name_ok {
                errs.at(n, "not a valid HTTP header name");
            }
            let values = n.list(errs).and_then(|items| {
                if items.is_empty() {
                    errs.at(n, "must list at least one value");
                    return None;
                }
                all(items.iter().map(|item| {
                    let s = item.str(errs)?;
                    if http::HeaderValue::from_str(s).is_err() {
                        errs.at(item, format!("not a valid header value: {}", quote(s)));
                        return None;
                    }
                    Some(s.to_string())
                }))
            })?;
            name_ok.then(|| (key.to_string(), values))
        })
        .collect();
    read.into_iter().collect()
}
