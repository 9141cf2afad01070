//! The Pingora glue: [`ProxyHttp`] callbacks that ask the selector
//! ([`crate::route::select`]) where a request goes, forward it, retry a refused
//! connection once elsewhere, and log one access line. Nothing here decides.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use log::warn;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use crate::access_log::{self, format};
use crate::affinity::cookie_header::cflb_values;
use crate::balance::outlier::Outcome;
use crate::clock;
use crate::config::ClientLimits;
use crate::front_door::guard::{Framing, RequestMark};
use crate::front_door::{self, body::BodyPace};
use crate::route::request::{
    forwarded_for, http1_authority, normalize_host, transfer_encoding, Authority,
};
use crate::route::sticky::{Decision, Routed, Sticky};
use crate::state::live::Live;
use crate::state::origin_tls::{self, TlsFailure};
use crate::state::upgraded::Registration;
use crate::state::{InFlight, LbState, Pick, State};
use policy::RuleStep;

mod policy;
mod reply;
mod retry;
mod upgrade;
mod upstream;
use reply::{
    failure_status, https_location, is_invalid_chunk, redirect, refuse, respond_text, text_header,
};
use upstream::{
    http_versions, keep_alive, one_content_length, speak, strip_own_cookie, te_for_http2,
};

pub struct Proxy {
    live: Arc<Live>,
    /// Where `always_use_https` sends plain HTTP (`None`: 443).
    https_port: Option<u16>,
    /// With `tether.cluster`: where pins the other replicas need are left.
    cluster: Option<crate::cluster::Outbox>,
    /// The client limits (swapped by a reload): the body's pace is the proxy's.
    limits: Arc<ArcSwap<ClientLimits>>,
}

impl Proxy {
    pub fn new(
        live: Arc<Live>,
        https_port: Option<u16>,
        limits: Arc<ArcSwap<ClientLimits>>,
    ) -> Self {
        Proxy {
            live,
            https_port,
            cluster: None,
            limits,
        }
    }

    /// Shares the session pins other replicas cannot compute (never waits).
    pub fn with_cluster(mut self, outbox: crate::cluster::Outbox) -> Self {
        self.cluster = Some(outbox);
        self
    }

    /// Routes a request (sync: nothing here may live across an await) at
    /// `now`, the request's start.
    fn route(
        state: &State,
        lb: &LbState,
        req: &RequestHeader,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<Routed> {
        let header_key = lb
            .header_key
            .as_ref()
            .and_then(|spec| spec.session_key(lb.id, &req.headers));
        Sticky(state).route(
            lb,
            cflb_values(&req.headers),
            header_key,
            client,
            state.clock.now_at(now),
            &mut random_unit,
        )
    }
}

/// Per-request context: what was decided and what it cost.
pub struct RequestCtx {
    /// The state this request is routed by, start to end (a reload may
    /// replace the live one meanwhile).
    state: Arc<State>,
    /// The request's one reading of the clock: its decisions' time and the
    /// cookie's expiry are derived from it ([`clock::Clock::now_at`]).
    started: Instant,
    host: String,
    client: Option<IpAddr>,
    lb: Option<Arc<LbState>>,
    /// Where the request goes, why, and its session.
    routed: Option<Routed>,
    in_flight: Option<InFlight>,
    /// The endpoint whose upstream connection this request holds.
    connected: Option<Pick>,
    retried: bool,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    /// The authority of an absolute-form target: the upstream's `Host` agrees.
    target_authority: Option<String>,
    /// Why the request was refused before routing, for the access log.
    refused: Option<&'static str>,
    /// The load balancing rule that applied (the last that matched).
    rule: Option<Arc<str>>,
    /// The status the endpoint answered with (passive health).
    upstream_status: Option<u16>,
    /// An endpoint whose failed connection passive health already counted.
    connect_failure_noted: Option<Pick>,
    /// The client's `X-Request-Id` when acceptable, else Tether's own
    /// (then sent upstream); set in `request_filter`.
    request_id: Option<String>,
    /// `true` when `request_id` is Tether's and goes upstream.
    request_id_ours: bool,
    /// A request with a body: its pace so far (`client_limits.min_body_rate`).
    body: Option<BodyPace>,
    /// An upgraded connection (`101`, a WebSocket): registered to follow its
    /// endpoint's state and counted open until the request ends.
    upgraded: Option<Registration>,
    /// A byte of the request body was read to go upstream: the request is
    /// never sent again for a stale connection ([`retry::send_again`]).
    body_forwarded: bool,
    /// The request is being sent again after a stale pooled connection: on
    /// a fresh connection.
    stale_retried: bool,
}

/// The close signal of the client connection, when the front door guards it
/// (HTTP/1): what closes it once upgraded ([`crate::state::upgraded`]).
fn close_signal(session: &Session) -> Option<Arc<RequestMark>> {
    front_door::mark_of(session.as_downstream()).cloned()
}

/// The request's `Host` (else its URI's authority): the Host sent upstream
/// when the endpoint sets none, a TLS endpoint's last-resort server name.
fn request_host(req: &pingora::http::RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

fn random_unit() -> f64 {
    rand::random::<f64>()
}

impl RequestCtx {
    fn pick(&self) -> Option<Pick> {
        self.routed.map(|r| r.pick)
    }

    fn decision(&self) -> Decision {
        self.routed.map_or(Decision::None, |r| r.decision)
    }

    /// How the upgraded connection of this request ended with `e` (`None`:
    /// the endpoint did not answer `101`).
    fn upgraded_end(&self, e: &Error) -> Option<retry::UpgradedEnd> {
        retry::upgraded_end(self.upstream_status == Some(101), e)
    }

    fn names<'a>(&self, state: &'a State) -> (&'a str, &'a str) {
        match self.pick() {
            Some(p) => (state.pools[p.pool()].name(), state.endpoint(p).name()),
            None => ("-", "-"),
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    /// No downstream modules: Tether offers no response compression, and the
    /// disabled compression module Pingora adds by default still builds a
    /// context and runs its filters for every request (0.5 % of a request's
    /// CPU in a profile, docs/benchmarks.md).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            state: self.live.load(),
            started: clock::stopwatch(),
            host: String::new(),
            client: None,
            lb: None,
            routed: None,
            in_flight: None,
            connected: None,
            retried: false,
            upstream_started: None,
            upstream_time: None,
            target_authority: None,
            refused: None,
            rule: None,
            upstream_status: None,
            connect_failure_noted: None,
            request_id: None,
            request_id_ours: false,
            body: None,
            upgraded: None,
            body_forwarded: false,
            stale_retried: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let framing = front_door::reached_proxy(session.as_downstream());
        ctx.client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        keep_alive(session);
        let req = session.req_header();
        ctx.request_id = match req.headers.get("x-request-id") {
            Some(v) if format::acceptable_request_id(v.as_bytes()) => {
                Some(String::from_utf8_lossy(v.as_bytes()).into_owned())
            }
            _ => {
                ctx.request_id_ours = true;
                Some(format::new_request_id(rand::random::<u128>()))
            }
        };
        let authority = if req.version == http::Version::HTTP_2 {
            Ok(req
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
                .map_or(Authority::None, Authority::Host))
        } else {
            http1_authority(
                req.raw_path(),
                req.version == http::Version::HTTP_11,
                req.headers
                    .get_all(http::header::HOST)
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        };
        let authority = match authority {
            Ok(a) => a,
            Err(bad) => return refuse(session, ctx, bad).await,
        };
        if let Err(bad) = transfer_encoding(
            req.headers
                .get_all(http::header::TRANSFER_ENCODING)
                .iter()
                .map(|v| v.as_bytes()),
        ) {
            return refuse(session, ctx, bad).await;
        }
        if let Authority::Target(target) = authority {
            ctx.target_authority = Some(target.to_string());
        }
        ctx.host = normalize_host(authority.host()).into_owned();
        if framing != Framing::Length(0) {
            let limits = self.limits.load();
            ctx.body = Some(BodyPace::new(limits.min_body_rate, limits.header_timeout));
            session.set_read_timeout(Some(limits.body_timeout));
        }

        let table = ctx.state.load_balancers();
        let Some(lb) = table.get(&ctx.host).cloned() else {
            respond_text(session, 404, "no load balancer serves this host").await?;
            return Ok(true);
        };
        drop(table);
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if lb.conf.always_use_https && !tls {
            let location = https_location(&ctx.host, self.https_port, session.req_header());
            ctx.lb = Some(lb);
            redirect(session, &location).await?;
            return Ok(true);
        }
        if !lb.conf.enabled {
            let text = format!("load balancer {} is disabled", lb.conf.name);
            ctx.lb = Some(lb);
            respond_text(session, 503, &text).await?;
            return Ok(true);
        }
        let lb =
            match policy::apply_rules(session, &ctx.state, &ctx.host, ctx.client, lb, tls).await? {
                RuleStep::Route(lb, rule) => {
                    ctx.rule = rule;
                    lb
                }
                RuleStep::Answered(lb, rule) => {
                    ctx.rule = Some(rule);
                    ctx.lb = Some(lb);
                    return Ok(true);
                }
            };
        ctx.routed = Self::route(
            &ctx.state,
            &lb,
            session.req_header(),
            ctx.client,
            ctx.started,
        );
        if ctx.routed.is_none() {
            let text = format!("no usable endpoint for load balancer {}", lb.conf.name);
            ctx.lb = Some(lb);
            respond_text(session, 503, &text).await?;
            return Ok(true);
        }
        ctx.lb = Some(lb);
        Ok(false)
    }

    /// Each piece of a request body: cut off a body slower than
    /// `client_limits.min_body_rate` (`408`, `reason=body_too_slow`).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if body.as_ref().is_some_and(|b| !b.is_empty()) {
            ctx.body_forwarded = true;
        }
        if let (Some(pace), Some(bytes), false) = (ctx.body.as_mut(), body.as_ref(), end_of_stream)
        {
            let elapsed = clock::stopwatch().saturating_duration_since(ctx.started);
            if pace.too_slow(bytes.len(), elapsed) {
                ctx.refused = Some("body_too_slow");
                return Err(Error::explain(
                    ErrorType::ReadTimedout,
                    "the request body is slower than client_limits.min_body_rate",
                )
                .into_down());
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(pick) = ctx.pick() else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no endpoint chosen");
        };
        ctx.in_flight = None;
        ctx.in_flight = Some(ctx.state.begin_request(pick));
        ctx.upstream_started = Some(clock::stopwatch());
        let endpoint = ctx.state.endpoint(pick);
        let timeouts = &ctx.state.upstream_timeouts;
        let pool_conf = &ctx.state.pools[pick.pool()].conf;
        let addr = endpoint.socket_addr();
        let mut peer = match &pool_conf.tls {
            None => HttpPeer::new(addr, false, String::new()),
            Some(tls) => {
                let request_host = request_host(session.req_header());
                let sni = origin_tls::server_name(tls, &endpoint.conf, request_host, addr);
                origin_tls::tls_peer(addr, sni, tls.verify, &tls.loaded)
            }
        };
        peer.options.connection_timeout = Some(timeouts.connect);
        let pool_read = ctx.state.pools[pick.pool()].conf.read_timeout;
        peer.options.read_timeout = Some(pool_read.unwrap_or(timeouts.read));
        peer.options.write_timeout = Some(timeouts.write);
        peer.options.idle_timeout = Some(timeouts.idle);
        let websocket =
            session.is_upgrade_req() && upgrade::asks_for_websocket(&session.req_header().headers);
        speak(&mut peer, pool_conf.protocol, websocket);
        if ctx.stale_retried && http_versions(pool_conf.protocol, websocket).0 == 1 {
            // HTTP/1: a pool key no pooled connection has, a fresh connection
            // (told `Connection: close`: not kept idle where no request would
            // find it). Not for HTTP/2: a broken connection leaves Pingora's
            // pool, and a connection under a key of its own would stay open,
            // idle, for `upstream_timeouts.idle`.
            peer.group_key = rand::random::<u64>() | 1;
        }
        if websocket {
            upgrade::prepare(&mut peer, timeouts.connect);
        }
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(old) = ctx.connected.take() {
            ctx.state.endpoint(old).remove_connection();
        }
        if let Some(pick) = ctx.pick() {
            ctx.state.endpoint(pick).add_connection();
            ctx.connected = Some(pick);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let (Some(lb), Some(routed)) = (ctx.lb.clone(), ctx.routed) else {
            return e;
        };
        let state = Arc::clone(&ctx.state);
        let (pool, endpoint) = ctx.names(&state);
        let why = e.etype().as_str();
        if let Some(failure) = TlsFailure::classify(why, &e.to_string()) {
            crate::metrics::record_tls_failure(pool, endpoint, failure.as_str());
            warn!(
                "pool {pool} endpoint {endpoint}: TLS to the endpoint failed ({}): {e}",
                failure.as_str()
            );
        }
        let lb_name = &lb.conf.name;
        policy::note_outcome(&state, routed.pick, Outcome::GatewayFailure, why);
        ctx.connect_failure_noted = Some(routed.pick);
        if ctx.retried {
            warn!("load balancer {lb_name} pool {pool} endpoint {endpoint}: connect failed after failover ({why}), giving up");
            return e;
        }
        ctx.retried = true;
        match Sticky(&state).connect_failed(&lb, &routed, ctx.client, &mut random_unit) {
            Some((next, decision)) => {
                let target = state.endpoint(next).name();
                let next_pool = state.pools[next.pool()].name();
                warn!("load balancer {lb_name} pool {pool} endpoint {endpoint}: connect failed ({why}), retrying on pool {next_pool} endpoint {target} ({})", decision.as_str());
                ctx.routed = Some(Routed {
                    pick: next,
                    decision,
                    ..routed
                });
                ctx.in_flight = None;
                crate::metrics::record_retry(crate::metrics::RetryReason::ConnectFailure);
                e.set_retry(true);
            }
            None if routed.decision == Decision::Hit => warn!("load balancer {lb_name} pool {pool} endpoint {endpoint}: connect failed ({why}); pinned session and zero_downtime_failover is none, not retrying"),
            None => warn!("load balancer {lb_name} pool {pool} endpoint {endpoint}: connect failed ({why}), no other usable endpoint"),
        }
        e
    }

    /// Pingora's own error lines (e.g. an upstream timeout) end with this:
    /// name the load balancer, pool and endpoint involved.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let (pool, endpoint) = ctx.names(&ctx.state);
        let lb = ctx.lb.as_ref().map_or("-", |lb| lb.conf.name.as_str());
        format!(
            "{}, load balancer {lb} pool {pool} endpoint {endpoint}",
            session.as_ref().request_summary()
        )
    }

    /// A retried connect failure is already logged by `fail_to_connect` with
    /// the load balancer, pool and endpoint; Pingora's own line would repeat it.
    /// A stale pooled connection sent again is routine (counted in
    /// `tether_upstream_retries_total`, logged at DEBUG by `error_while_proxy`).
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
        _error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        matches!(context, ProxyWarnLogContext::UpstreamRetry) && (ctx.retried || ctx.stale_retried)
    }

    /// A failure the client caused (a malformed body, a close, its own
    /// timeout) is not an operator's error: Pingora's ERROR line for it is
    /// logged at DEBUG here; the access log has the request with its status.
    /// Nor is the normal end of an upgraded connection (a WebSocket closed
    /// or reset by either side, [`retry::upgraded_end`]).
    fn suppress_error_log(&self, session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        let client = reply::client_caused(error);
        let normal_end = ctx.upgraded_end(error) == Some(retry::UpgradedEnd::Normal);
        if client || normal_end {
            log::debug!(
                "{}: {error}, {}",
                if normal_end {
                    "upgraded connection ended"
                } else {
                    "client's failure"
                },
                self.request_summary(session, ctx)
            );
        }
        client || normal_end
    }

    /// An error on a connection that was had (fresh or pooled): a request
    /// that met a stale pooled connection before any byte of its response,
    /// its body not yet sent, is sent again on a fresh connection
    /// ([`retry::send_again`]); nothing else is (this replaces Pingora's
    /// default, which retries only idempotent methods and may reuse another
    /// pooled connection).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let attempt = retry::Attempt {
            reused: client_reused,
            response_started: ctx.upstream_status.is_some(),
            body_forwarded: ctx.body_forwarded,
            already_retried: ctx.stale_retried,
            idempotent: retry::idempotent(&session.req_header().method),
        };
        let again = retry::send_again(attempt, retry::failure_of(&e));
        let mut e = e.more_context(format!("Peer: {peer}"));
        e.set_retry(again);
        if again {
            log::debug!(
                "stale pooled connection ({e}), sending again on a fresh connection: {}",
                self.request_summary(session, ctx)
            );
            crate::metrics::record_retry(crate::metrics::RetryReason::StaleConnection);
            ctx.stale_retried = true;
            ctx.in_flight = None;
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let existing = upstream_request
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        if let Some(xff) = forwarded_for(existing, ctx.client) {
            upstream_request.insert_header("X-Forwarded-For", xff)?;
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        upstream_request.insert_header("X-Forwarded-Proto", if tls { "https" } else { "http" })?;
        if !ctx.host.is_empty() {
            upstream_request.insert_header("X-Forwarded-Host", ctx.host.as_str())?;
        }
        if let Some(host) = ctx
            .pick()
            .and_then(|p| ctx.state.endpoint(p).conf.host.as_deref())
        {
            upstream_request.insert_header(http::header::HOST, host)?;
        } else if let Some(authority) = ctx.target_authority.as_deref() {
            upstream_request.insert_header(http::header::HOST, authority)?;
        }
        if ctx.request_id_ours {
            if let Some(id) = ctx.request_id.as_deref() {
                upstream_request.insert_header("X-Request-Id", id)?;
            }
        }
        one_content_length(upstream_request)?;
        strip_own_cookie(upstream_request)?;
        te_for_http2(&session.req_header().headers, upstream_request)?;
        if ctx.stale_retried
            && upstream_request.version != http::Version::HTTP_2
            && upstream_request
                .headers
                .get(http::header::UPGRADE)
                .is_none()
        {
            // The fresh connection of a retry has a pool key of its own
            // (`upstream_peer`): not kept idle where no request would find it.
            upstream_request.insert_header(http::header::CONNECTION, "close")?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(lb), Some(routed)) = (ctx.lb.as_ref(), ctx.routed.as_ref()) else {
            return Ok(());
        };
        if response.status == http::StatusCode::SWITCHING_PROTOCOLS
            && ctx.upgraded.is_none()
            && session.is_upgrade_req()
        {
            if let Some(mark) = close_signal(session) {
                let (pool, endpoint) = ctx.names(&ctx.state);
                ctx.upgraded = Some(self.live.upgraded().register(
                    &lb.conf.name,
                    pool,
                    endpoint,
                    mark,
                ));
            }
        }
        if routed.decision.pins() {
            let now = ctx.state.clock.now_at(ctx.started);
            if let Some(cookie) = Sticky(&ctx.state).commit(lb, routed, now) {
                // Appended: the upstream's own Set-Cookie headers stay.
                response.append_header(http::header::SET_COOKIE, cookie)?;
            }
        }
        if let Some(outbox) = &self.cluster {
            if let Some(pin) = crate::cluster::pins::to_share(&ctx.state, lb, routed) {
                outbox.pin(pin);
            }
        }
        if ctx.state.decision_header {
            let (pool, endpoint) = ctx.names(&ctx.state);
            let mut value = format!(
                "{}/{pool}/{endpoint}/{}",
                lb.conf.name,
                routed.decision.as_str()
            );
            if let Some(rule) = &ctx.rule {
                value.push('/');
                value.push_str(rule);
            }
            response.insert_header("X-Tether-Decision", value)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (mut code, text) = failure_status(e);
        if session
            .response_written()
            .is_some_and(|r| !r.status.is_informational() || r.status.as_u16() == 101)
        {
            // The client has the response's header (a `101`, or a stream
            // cut short): no second response; the connection just ends. (After
            // a `100 Continue` the client still gets its error response.)
            code = 0;
        }
        if code == 408 && ctx.refused.is_none() {
            ctx.refused = Some("body_timeout");
        }
        if is_invalid_chunk(e) {
            ctx.refused = Some("invalid_chunk");
        }
        if code > 0 {
            let lb = ctx.lb.as_ref().map_or("-", |lb| lb.conf.name.as_str());
            let body = Bytes::from(format!("{code} {text} (load balancer {lb})\n"));
            if let Ok(mut resp) = text_header(code, &body) {
                let _ = resp.insert_header("Cache-Control", "no-store");
                if let Err(err) = session
                    .as_downstream_mut()
                    .write_error_response(resp, body)
                    .await
                {
                    // The client's connection failed: its business, not the operator's.
                    log::debug!("failed to send error response to the client: {err}");
                }
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // An upgraded connection has ended: no longer open.
        ctx.upgraded = None;
        if let Some(connected) = ctx.connected.take() {
            ctx.state.endpoint(connected).remove_connection();
        }
        ctx.in_flight = None;
        if let Some(pick) = ctx.pick() {
            policy::note_answer(
                &ctx.state,
                pick,
                ctx.upstream_status,
                e,
                ctx.connect_failure_noted,
            );
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let (pool, endpoint) = ctx.names(&ctx.state);
        let lb = ctx.lb.as_ref().map_or("-", |lb| lb.conf.name.as_str());
        let endpoint_id = ctx.pick().map(|p| ctx.state.endpoint(p).id);
        match &ctx.lb {
            Some(served) => served.counters.record(endpoint_id, status, ctx.decision()),
            None => crate::metrics::record_request(lb, endpoint_id, status, ctx.decision()),
        }
        if let Some(rule) = &ctx.rule {
            crate::metrics::record_rule(lb, rule);
        }
        let ended = clock::stopwatch();
        let total_time = ended.saturating_duration_since(ctx.started);
        crate::metrics::latency::record_request(
            ctx.lb.as_ref().map_or(0, |lb| lb.id),
            endpoint_id,
            total_time,
            ctx.upstream_time,
        );
        if !access_log::enabled() {
            return;
        }
        let user_agent = req
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let error = e
            .filter(|e| ctx.upgraded_end(e) != Some(retry::UpgradedEnd::Normal))
            .map(|e| e.etype().as_str());
        access_log::log(&access_log::Record {
            unix_ms: clock::unix_ms_at(ended),
            client: ctx.client,
            host: (!ctx.host.is_empty()).then_some(ctx.host.as_str()),
            method: req.method.as_str(),
            path: req.uri.path_and_query().map_or("/", |p| p.as_str()),
            status,
            load_balancer: ctx.lb.as_ref().map(|lb| lb.conf.name.as_str()),
            pool: ctx.pick().map(|_| pool),
            endpoint: ctx.pick().map(|_| endpoint),
            affinity: ctx.decision().as_str(),
            upstream_time: ctx.upstream_time,
            total_time,
            error,
            reason: ctx.refused,
            bytes_sent: session.as_downstream().body_bytes_sent() as u64,
            bytes_received: session.as_downstream().body_bytes_read() as u64,
            upstream: ctx
                .pick()
                .filter(|_| ctx.upstream_started.is_some())
                .map(|p| ctx.state.endpoint(p).socket_addr()),
            request_id: ctx.request_id.as_deref(),
            rule: ctx.rule.as_deref(),
            user_agent: user_agent.as_deref(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_spec_statuses() {
        let refused = Error::explain(ErrorType::ConnectRefused, "x").into_up();
        assert_eq!(failure_status(&refused).0, 502);

        let timeout = Error::explain(ErrorType::ReadTimedout, "x").into_up();
        assert_eq!(failure_status(&timeout).0, 504);

        let closed = Error::explain(ErrorType::ConnectionClosed, "x").into_down();
        assert_eq!(failure_status(&closed).0, 0);

        let status = Error::explain(ErrorType::HTTPStatus(503), "x");
        assert_eq!(failure_status(&status).0, 503);

        let slow_body = Error::explain(ErrorType::ReadTimedout, "x").into_down();
        assert_eq!(failure_status(&slow_body).0, 408);

        // The front door's verdict on a chunked body, under two of Pingora's errors.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            crate::front_door::guard::InvalidChunk,
        );
        let read = Error::because(ErrorType::ReadError, "when reading body", io);
        let chunk = Error::because(ErrorType::ReadError, "peer", read).into_down();
        assert!(is_invalid_chunk(&chunk));
        assert_eq!(failure_status(&chunk).0, 400);
        let other =
            Error::because(ErrorType::ReadError, "x", std::io::Error::other("reset")).into_down();
        assert!(!is_invalid_chunk(&other));
        assert_eq!(failure_status(&other).0, 0);
    }
}
