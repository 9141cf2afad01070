//! The proxy's traffic-policy glue: runs a load balancer's rules on a
//! request (answering a rule's fixed response itself) and feeds passive
//! health with each endpoint's answers. The decisions are the pure pieces'
//! (`src/rules/`, `src/balance/outlier.rs`); this file only connects them to
//! Pingora's session.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use log::warn;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::balance::outlier::Outcome;
use crate::config::FixedResponse;
use crate::route::sticky::Decision;
use crate::rules;
use crate::state::{LbState, Pick, State};

/// What a load balancer's rules made of a request.
pub enum RuleStep {
    /// Route by this load balancer (the rules' overrides laid over it), and
    /// the rule that applied, if one did.
    Route(Arc<LbState>, Option<Arc<str>>),
    /// A rule's fixed response answered the request.
    Answered(Arc<LbState>, Arc<str>),
}

/// Runs `lb`'s rules on the request (`host` as routed, lower-case, no port).
pub async fn apply_rules(
    session: &mut Session,
    state: &State,
    host: &str,
    client: Option<IpAddr>,
    lb: Arc<LbState>,
    tls: bool,
) -> Result<RuleStep> {
    if lb.rules.is_empty() {
        return Ok(RuleStep::Route(lb, None));
    }
    let req = session.req_header();
    // Rules see the normalised path; the request goes upstream as sent.
    let uri = rules::normalise_uri(req.uri.path_and_query().map_or("/", |p| p.as_str()));
    let view = rules::Request {
        host,
        uri: &uri,
        method: req.method.as_str(),
        headers: &req.headers,
        client,
        tls,
    };
    let (rule, fixed) = match lb.rules.evaluate(&view) {
        rules::Outcome::None => return Ok(RuleStep::Route(lb, None)),
        rules::Outcome::Routed { overrides, last } => {
            let rule = Arc::clone(&last.name);
            return Ok(RuleStep::Route(state.ruled(&lb, overrides), Some(rule)));
        }
        rules::Outcome::Fixed(rule, fixed) => (Arc::clone(&rule.name), fixed.clone()),
    };
    let decision = state
        .decision_header
        .then(|| format!("{}/-/-/{}/{rule}", lb.conf.name, Decision::None.as_str()));
    respond_fixed(session, &fixed, decision).await?;
    Ok(RuleStep::Answered(lb, rule))
}

/// A rule's `fixed_response`.
async fn respond_fixed(
    session: &mut Session,
    fixed: &FixedResponse,
    decision: Option<String>,
) -> Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let framing = fixed_framing(fixed.status_code, head, fixed.message_body.len());
    let mut resp = ResponseHeader::build(fixed.status_code, Some(4))?;
    resp.insert_header("Content-Type", fixed.content_type.as_str())?;
    if let Some(length) = framing.content_length {
        resp.insert_header("Content-Length", length.to_string())?;
    }
    if let Some(location) = &fixed.location {
        resp.insert_header(http::header::LOCATION, location.as_str())?;
    }
    if let Some(decision) = decision {
        resp.insert_header("X-Tether-Decision", decision)?;
    }
    if !framing.body {
        return session.write_response_header(Box::new(resp), true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
    let body = Bytes::from(fixed.message_body.clone());
    session.write_response_body(Some(body), true).await
}

/// How a fixed response is framed (RFC 9110 6.4.1, 9.3.2).
#[derive(Debug, PartialEq, Eq)]
struct Framing {
    /// Its `Content-Length`: none for 204 and 304; for a `HEAD` request, the
    /// length a `GET` would get.
    content_length: Option<usize>,
    /// Whether body bytes follow: never for 204, 304 or a `HEAD` request.
    body: bool,
}

fn fixed_framing(status: u16, head: bool, body_len: usize) -> Framing {
    match status {
        204 | 304 => Framing {
            content_length: None,
            body: false,
        },
        _ => Framing {
            content_length: Some(body_len),
            body: !head,
        },
    }
}

/// Passive health: counts an endpoint's answer (or failure) and logs an
/// ejection it starts.
pub fn note_outcome(state: &State, pick: Pick, outcome: Outcome, why: &str) {
    let now_ms = state.clock.now_ms();
    let pool = &state.pools[pick.pool()];
    if let Some(until) = pool.record_outcome(pick.endpoint(), outcome, now_ms) {
        warn!(
            "pool {} endpoint {}: ejected by outlier_detection for {} s (last: {why} {outcome:?})",
            pool.name(),
            state.endpoint(pick).name(),
            until.saturating_sub(now_ms) / 1000
        );
    }
}

/// Passive health after a request: the endpoint's answer, or the failure
/// that left none (a connection failure already counted by the retry,
/// `connect_failure_noted`, is not counted again).
pub fn note_answer(
    state: &State,
    pick: Pick,
    upstream_status: Option<u16>,
    error: Option<&Error>,
    connect_failure_noted: Option<Pick>,
) {
    match (upstream_status, error) {
        (Some(status), _) => note_outcome(state, pick, Outcome::of_status(status), "status"),
        (None, Some(e))
            if e.esource() == &pingora::ErrorSource::Upstream
                && connect_failure_noted != Some(pick) =>
        {
            note_outcome(state, pick, Outcome::GatewayFailure, e.etype().as_str())
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_fixed_responses_have_no_length_and_head_gets_the_get_length() {
        let framing = |content_length, body| Framing {
            content_length,
            body,
        };
        assert_eq!(fixed_framing(200, false, 11), framing(Some(11), true));
        assert_eq!(fixed_framing(403, false, 0), framing(Some(0), true));
        assert_eq!(fixed_framing(200, true, 11), framing(Some(11), false));
        assert_eq!(fixed_framing(301, true, 5), framing(Some(5), false));
        for status in [204, 304] {
            for head in [false, true] {
                assert_eq!(fixed_framing(status, head, 0), framing(None, false));
            }
        }
    }
}
