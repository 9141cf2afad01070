//! The status page (`GET /`, `/status.js`, `/status.css`: three static
//! files compiled in, no token: they hold no data) and the small JSON it
//! reads besides `/v1/pools` and `/metrics`
//! (`GET /v1/status`, token needed like every data call): each load
//! balancer's pools in failover order, which serve now, and the session
//! table's size.

use serde::Serialize;

use super::call::Call;
use super::response::{allow, AdminResponse, Answer};
use crate::config::{Spelled, SteeringPolicy};
use crate::route::select::Selector;
use crate::state::{LbState, State};

/// The page, compiled in (docs/status-page.md).
pub const PAGE: &str = include_str!("status.html");
/// Its script: a file of its own, so that no inline script is allowed.
pub const SCRIPT: &str = include_str!("status.js");
/// Its styles, likewise.
pub const STYLE: &str = include_str!("status.css");

/// Scripts and styles only from this listener's own files (no inline code,
/// no `eval`), data calls only to this listener; no frames, forms, plugins
/// or base URL. Sent with every file of the page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One of the status page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    content_type: &'static str,
    body: &'static str,
}

/// The status page's file at path `segs`, if it is one: `/`,
/// `/status.js`, `/status.css`.
pub fn file(segs: &[&str]) -> Option<File> {
    let (content_type, body) = match segs {
        [""] => ("text/html; charset=utf-8", PAGE),
        ["status.js"] => ("text/javascript; charset=utf-8", SCRIPT),
        ["status.css"] => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    Some(File { content_type, body })
}

/// `GET` of one of the page's files.
pub fn serve(method: &str, file: File) -> Answer {
    allow(method, &["GET"])?;
    Ok(
        AdminResponse::new(200, file.content_type, file.body.as_bytes().to_vec())
            .with_header("content-security-policy", CSP.to_string())
            .with_header("x-content-type-options", "nosniff".to_string())
            .with_header("referrer-policy", "no-referrer".to_string())
            .with_header("x-frame-options", "DENY".to_string()),
    )
}

#[derive(Debug, Serialize)]
struct StatusView {
    version: &'static str,
    load_balancers: Vec<LbStatus>,
    /// Entries in the `header` / `source_ip` session table, and its bound.
    sessions: usize,
    max_sessions: usize,
}

#[derive(Debug, Serialize)]
struct LbStatus {
    name: String,
    enabled: bool,
    session_affinity: &'static str,
    steering_policy: &'static str,
    /// `default_pools` in order, then the fallback pool.
    pools: Vec<PoolRef>,
    /// The pools new requests go to now (see [`serving`]).
    serving: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PoolRef {
    name: String,
    /// `default` or `fallback` (a pool that is both is listed once, `default`).
    role: &'static str,
    healthy: bool,
}

/// `GET /v1/status`.
pub fn handle(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let state = call.state();
    let lbs = state.load_balancers();
    let mut load_balancers: Vec<LbStatus> = lbs.all().map(|lb| lb_status(state, lb)).collect();
    load_balancers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(AdminResponse::ok(&StatusView {
        version: env!("CARGO_PKG_VERSION"),
        load_balancers,
        sessions: state.sessions.len(),
        max_sessions: state.sessions.max_sessions(),
    }))
}

fn lb_status(state: &State, lb: &LbState) -> LbStatus {
    let mut pools: Vec<PoolRef> = lb
        .default_pools
        .iter()
        .map(|&p| PoolRef {
            name: state.pools[p].name().to_string(),
            role: "default",
            healthy: Selector(state).pool_is_healthy(p),
        })
        .collect();
    if let Some(f) = lb.fallback_pool.filter(|f| !lb.default_pools.contains(f)) {
        pools.push(PoolRef {
            name: state.pools[f].name().to_string(),
            role: "fallback",
            healthy: Selector(state).pool_is_healthy(f),
        });
    }
    let fallback = lb.fallback_pool.map(|f| state.pools[f].name());
    LbStatus {
        name: lb.conf.name.clone(),
        enabled: lb.conf.enabled,
        session_affinity: lb.conf.session_affinity.name(),
        steering_policy: lb.conf.steering_policy.name(),
        serving: serving(lb.conf.enabled, lb.conf.steering_policy, &pools, fallback),
        pools,
    }
}

/// Where new requests go now: with `steering_policy: off`, the first healthy
/// default pool (failover order); with another policy, every healthy default
/// pool (the policy spreads among them); with none healthy, the fallback
/// pool; a disabled load balancer serves nothing. Sessions pinned by
/// affinity may still be served elsewhere.
fn serving(
    enabled: bool,
    policy: SteeringPolicy,
    pools: &[PoolRef],
    fallback: Option<&str>,
) -> Vec<String> {
    if !enabled {
        return Vec::new();
    }
    let mut healthy = pools
        .iter()
        .filter(|p| p.role == "default" && p.healthy)
        .map(|p| p.name.clone());
    let chosen: Vec<String> = if policy == SteeringPolicy::Off {
        healthy.next().into_iter().collect()
    } else {
        healthy.collect()
    };
    if chosen.is_empty() {
        return fallback.map(str::to_string).into_iter().collect();
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, role: &'static str, healthy: bool) -> PoolRef {
        PoolRef {
            name: name.into(),
            role,
            healthy,
        }
    }

    #[test]
    fn serving_follows_failover_order_then_fallback() {
        let pools = [
            p("a", "default", false),
            p("b", "default", true),
            p("c", "default", true),
        ];
        assert_eq!(serving(true, SteeringPolicy::Off, &pools, None), ["b"]);
        assert_eq!(
            serving(true, SteeringPolicy::Random, &pools, None),
            ["b", "c"]
        );
        let down = [p("a", "default", false), p("f", "fallback", false)];
        assert_eq!(serving(true, SteeringPolicy::Off, &down, Some("f")), ["f"]);
        assert!(serving(false, SteeringPolicy::Off, &pools, None).is_empty());
    }

    #[test]
    fn the_page_has_no_external_assets_and_nothing_inline() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for text in [PAGE, SCRIPT, STYLE] {
            for external in ["src=\"http", "href=\"http", "@import", "src=\"//", "url("] {
                assert!(!text.contains(external), "{external}");
            }
        }
        // Nothing the CSP would block: no inline script, handler or style.
        assert!(PAGE.contains("<script src=\"/status.js\"></script>"));
        assert!(PAGE.contains("<link rel=\"stylesheet\" href=\"/status.css\">"));
        assert_eq!(PAGE.matches("<script").count(), 1, "one script, by src");
        for inline in ["<style", "style=", " onclick=", " onload=", "javascript:"] {
            assert!(!PAGE.contains(inline), "{inline}");
            assert!(!SCRIPT.contains(inline), "{inline}");
        }
        for unsafe_code in ["eval(", "new Function", "setTimeout(\"", "setInterval(\""] {
            assert!(!SCRIPT.contains(unsafe_code), "{unsafe_code}");
        }
        let size = PAGE.len() + SCRIPT.len() + STYLE.len();
        assert!(size < 40_000, "small enough to read: {size} bytes");
    }

    #[test]
    fn the_csp_allows_no_inline_script_or_style() {
        assert!(!CSP.contains("unsafe"), "{CSP}");
        assert!(CSP.contains("script-src 'self';"), "{CSP}");
        assert!(CSP.contains("style-src 'self';"), "{CSP}");
        assert!(CSP.contains("default-src 'none'"), "{CSP}");
        assert!(CSP.contains("frame-ancestors 'none'"), "{CSP}");
    }

    #[test]
    fn the_page_takes_no_action_from_its_url() {
        // The fragment may carry a token (a login), nothing else; the query
        // is never read; a change is made only by the click handler.
        assert!(!SCRIPT.contains("location.search"));
        for read in ["f.get(", "f.has("] {
            for (at, _) in SCRIPT.match_indices(read) {
                let arg = &SCRIPT[at + read.len()..];
                assert!(arg.starts_with("\"token\")"), "{read}{}", &arg[..20]);
            }
        }
        assert_eq!(
            SCRIPT.matches("change(").count(),
            2,
            "defined once, called from the click handler only"
        );
    }
}
