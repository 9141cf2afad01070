//! One probe attempt over the network: a TCP connect (`tcp`), a request
//! through Pingora's HTTP connector (`http`, `https`) checked against
//! `expected_codes` and `expected_body`, or a `grpc.health.v1` check over
//! HTTP/2 (`grpc`, judged by [`super::grpc::verdict`]), all within the
//! monitor's `timeout`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use super::check::{Probe, Target};
use crate::config::{Monitor, MonitorType};
use crate::state::origin_tls::tls_peer;

/// Bytes of a response body read to look for `expected_body`.
const BODY_LIMIT: usize = 64 * 1024;

/// The real probe of one monitor; every endpoint's check shares the connector.
pub struct NetProbe {
    monitor: Arc<Monitor>,
    connector: Arc<Connector>,
}

impl NetProbe {
    pub fn new(monitor: Arc<Monitor>, connector: Arc<Connector>) -> Self {
        NetProbe { monitor, connector }
    }
}

#[async_trait]
impl Probe for NetProbe {
    async fn probe(&self, target: &Target) -> Result<Duration, String> {
        let m = &self.monitor;
        let started = crate::clock::tokio_now();
        let attempt = async {
            match m.r#type {
                MonitorType::Tcp => tokio::net::TcpStream::connect(target.addr)
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp connect: {e}")),
                MonitorType::Http | MonitorType::Https => {
                    http_probe(&self.connector, m, target).await
                }
                MonitorType::Grpc => grpc_probe(&self.connector, m, target).await,
            }
        };
        match tokio::time::timeout(m.timeout, attempt).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!("timed out after {} ms", m.timeout.as_millis())),
        }
    }
}

/// The probe request: `method` `path`, the monitor's headers, and `Host` /
/// `User-Agent` unless the monitor sets them.
fn request(m: &Monitor, host: &str) -> Result<RequestHeader, String> {
    let mut req = RequestHeader::build(m.method.as_str(), m.path.as_bytes(), None)
        .map_err(|e| format!("building the request: {e}"))?;
    let mut has_host = false;
    let mut has_agent = false;
    for (name, values) in &m.header {
        has_host |= name.eq_ignore_ascii_case("host");
        has_agent |= name.eq_ignore_ascii_case("user-agent");
        for value in values {
            req.append_header(name.clone(), value.as_str())
                .map_err(|e| format!("header {name}: {e}"))?;
        }
    }
    if !has_host {
        req.insert_header(http::header::HOST, host)
            .map_err(|e| format!("header Host: {e}"))?;
    }
    if !has_agent {
        req.insert_header(http::header::USER_AGENT, "tether-monitor")
            .map_err(|e| format!("header User-Agent: {e}"))?;
    }
    Ok(req)
}

/// The `Health/Check` request's header: `POST`, the monitor's headers (a
/// `Host` among them is the `:authority`), `content-type: application/grpc`,
/// `te: trailers`, `User-Agent` unless the monitor sets it.
fn grpc_request(m: &Monitor, host: &str, tls: bool) -> Result<RequestHeader, String> {
    let mut req = RequestHeader::build("POST", super::grpc::CHECK_PATH.as_bytes(), None)
        .map_err(|e| format!("building the request: {e}"))?;
    let mut authority = host;
    let mut has_agent = false;
    for (name, values) in &m.header {
        if name.eq_ignore_ascii_case("host") {
            authority = values.first().map_or(host, String::as_str);
            continue;
        }
        has_agent |= name.eq_ignore_ascii_case("user-agent");
        for value in values {
            req.append_header(name.clone(), value.as_str())
                .map_err(|e| format!("header {name}: {e}"))?;
        }
    }
    let uri = http::Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .authority(authority)
        .path_and_query(super::grpc::CHECK_PATH)
        .build()
        .map_err(|e| format!("the authority {authority:?}: {e}"))?;
    req.set_uri(uri);
    req.insert_header(http::header::CONTENT_TYPE, "application/grpc")
        .and_then(|()| req.insert_header(http::header::TE, "trailers"))
        .map_err(|e| format!("building the request: {e}"))?;
    if !has_agent {
        req.insert_header(http::header::USER_AGENT, "tether-monitor")
            .map_err(|e| format!("header User-Agent: {e}"))?;
    }
    Ok(req)
}

/// `type: grpc`: `grpc.health.v1.Health/Check` for the monitor's
/// `grpc_service` over HTTP/2, TLS with ALPN `h2` and the pool's `tls` when
/// the pool has it, else h2c (prior knowledge), whatever the pool's
/// `protocol` (gRPC is HTTP/2).
async fn grpc_probe(connector: &Connector, m: &Monitor, target: &Target) -> Result<(), String> {
    let pool_tls = target.tls.as_ref();
    let sni = pool_tls.map_or_else(String::new, |p| p.server_name.clone());
    let mut peer = match pool_tls {
        Some(p) => tls_peer(target.addr, sni, p.verify && !m.allow_insecure, &p.loaded),
        None => HttpPeer::new(target.addr, false, sni),
    };
    peer.options.set_http_version(2, 2);
    peer.options.connection_timeout = Some(m.timeout);
    peer.options.read_timeout = Some(m.timeout);
    peer.options.write_timeout = Some(m.timeout);
    let req = grpc_request(m, &target.host, pool_tls.is_some())?;
    let (session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect: {}", e.etype().as_str()))?;
    let HttpSession::H2(mut h2) = session else {
        return Err("the endpoint did not agree to HTTP/2 (ALPN h2)".into());
    };
    let sent = |e: Box<pingora::Error>| format!("sending the request: {}", e.etype().as_str());
    h2.write_request_header(Box::new(req), false)
        .map_err(sent)?;
    h2.write_request_body(super::grpc::check_request(&m.grpc_service), true)
        .await
        .map_err(sent)?;
    h2.read_response_header()
        .await
        .map_err(|e| format!("reading the response: {}", e.etype().as_str()))?;
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match h2.read_response_body().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("reading the body: {}", e.etype().as_str())),
        }
    }
    let trailers = h2
        .read_trailers()
        .await
        .map_err(|e| format!("reading the trailers: {}", e.etype().as_str()))?;
    let header = h2.response_header();
    // A trailers-only answer (an error) carries grpc-status in its header.
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| header.and_then(|h| h.headers.get(name)))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let status = header.map_or(0, |h| h.status.as_u16());
    super::grpc::verdict(
        status,
        field("grpc-status").as_deref(),
        field("grpc-message").as_deref(),
        &body,
    )
}

async fn http_probe(connector: &Connector, m: &Monitor, target: &Target) -> Result<(), String> {
    let tls = m.r#type == MonitorType::Https;
    let pool_tls = target.tls.as_ref().filter(|_| tls);
    let sni = match pool_tls {
        Some(p) => p.server_name.clone(),
        None if tls => target
            .host
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    };
    // The pool's `tls` (docs/origins.md): its CA, its client certificate,
    // its verification unless the monitor allows insecure.
    let mut peer = match pool_tls {
        Some(p) => tls_peer(target.addr, sni, p.verify && !m.allow_insecure, &p.loaded),
        None => HttpPeer::new(target.addr, tls, sni),
    };
    if m.allow_insecure {
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
    }
    peer.options.connection_timeout = Some(m.timeout);
    peer.options.read_timeout = Some(m.timeout);
    peer.options.write_timeout = Some(m.timeout);
    let req = request(m, &target.host)?;

    let (mut session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect: {}", e.etype().as_str()))?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| format!("sending the request: {}", e.etype().as_str()))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| format!("sending the request: {}", e.etype().as_str()))?;
    session
        .read_response_header()
        .await
        .map_err(|e| format!("reading the response: {}", e.etype().as_str()))?;
    let status = session.response_header().map_or(0, |r| r.status.as_u16());
    if !m.expected_codes.matches(status) {
        return Err(format!("status {status} is not expected"));
    }
    if m.expected_body.is_empty() {
        return Ok(());
    }
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match session.read_response_body().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("reading the body: {}", e.etype().as_str())),
        }
    }
    if contains_ignore_case(&body, m.expected_body.as_bytes()) {
        Ok(())
    } else {
        Err(format!("body does not contain {:?}", m.expected_body))
    }
}

/// `needle` is already lower-case (the config stores `expected_body` so).
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CodePattern, ExpectedCodes};
    use crate::health::check::tests::{monitor, target};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn body_match_ignores_case() {
        assert!(contains_ignore_case(b"Status: OK, all good", b"ok, all"));
        assert!(!contains_ignore_case(b"Status: FAIL", b"ok"));
        assert!(contains_ignore_case(b"anything", b""));
        assert!(!contains_ignore_case(b"", b"x"));
    }

    #[test]
    fn the_request_carries_default_host_and_user_agent_unless_set() {
        let mut m = monitor(100, 0, 1, 1);
        let req = request(&m, "app.internal:8080").unwrap();
        assert_eq!(req.method.as_str(), "GET");
        assert_eq!(req.uri.path(), "/health");
        assert_eq!(req.headers["host"], "app.internal:8080");
        assert_eq!(req.headers["user-agent"], "tether-monitor");
        m.header
            .insert("Host".into(), vec!["health.internal".into()]);
        m.header.insert("user-agent".into(), vec!["probe".into()]);
        m.header
            .insert("X-Check".into(), vec!["1".into(), "2".into()]);
        m.method = "HEAD".into();
        let req = request(&m, "app.internal:8080").unwrap();
        assert_eq!(req.method.as_str(), "HEAD");
        assert_eq!(req.headers["host"], "health.internal");
        assert_eq!(req.headers["user-agent"], "probe");
        assert_eq!(req.headers.get_all("x-check").iter().count(), 2);
    }

    #[test]
    fn the_grpc_request_is_a_post_with_grpc_headers() {
        let mut m = monitor(100, 0, 1, 1);
        m.r#type = MonitorType::Grpc;
        let req = grpc_request(&m, "10.0.0.1:50051", false).unwrap();
        assert_eq!(req.method.as_str(), "POST");
        assert_eq!(
            req.uri.to_string(),
            "http://10.0.0.1:50051/grpc.health.v1.Health/Check"
        );
        assert_eq!(req.headers["content-type"], "application/grpc");
        assert_eq!(req.headers["te"], "trailers");
        assert_eq!(req.headers["user-agent"], "tether-monitor");
        assert!(req.headers.get("host").is_none());
        m.header.insert("Host".into(), vec!["api.internal".into()]);
        m.header
            .insert("authorization".into(), vec!["Bearer x".into()]);
        let req = grpc_request(&m, "10.0.0.1:50051", true).unwrap();
        assert_eq!(
            req.uri.to_string(),
            "https://api.internal/grpc.health.v1.Health/Check"
        );
        assert_eq!(req.headers["authorization"], "Bearer x");
    }

    /// A loopback server answering every connection with `response` after
    /// `delay`; returns its port.
    async fn serve(response: &'static str, delay: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        port
    }

    fn net_probe(m: Monitor) -> NetProbe {
        NetProbe::new(Arc::new(m), Arc::new(Connector::new(None)))
    }

    const OK_BODY: &str =
        "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\nStatus: ALL GOOD";
    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown";

    #[tokio::test]
    async fn http_probe_checks_codes_body_and_timeout_on_a_loopback_server() {
        let ok = serve(OK_BODY, Duration::ZERO).await;
        let unavailable = serve(UNAVAILABLE, Duration::ZERO).await;
        let slow = serve(OK_BODY, Duration::from_secs(5)).await;

        let m = monitor(300, 0, 1, 1);
        let rtt = net_probe(m.clone()).probe(&target("p", "ok", ok)).await;
        assert!(rtt.is_ok(), "{rtt:?}");
        assert_eq!(
            net_probe(m.clone())
                .probe(&target("p", "down", unavailable))
                .await,
            Err("status 503 is not expected".to_string())
        );

        let mut codes = m.clone();
        codes.expected_codes =
            ExpectedCodes(vec![CodePattern::Exact(200), CodePattern::Exact(503)]);
        assert!(net_probe(codes)
            .probe(&target("p", "down", unavailable))
            .await
            .is_ok());

        let mut body = m.clone();
        body.expected_body = "all good".into();
        assert!(net_probe(body.clone())
            .probe(&target("p", "ok", ok))
            .await
            .is_ok());
        body.expected_body = "not-there".into();
        assert_eq!(
            net_probe(body).probe(&target("p", "ok", ok)).await,
            Err("body does not contain \"not-there\"".to_string())
        );

        let started = crate::clock::tokio_now();
        assert_eq!(
            net_probe(m).probe(&target("p", "slow", slow)).await,
            Err("timed out after 300 ms".to_string())
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn tcp_probe_connects_or_says_why() {
        let open = serve(OK_BODY, Duration::ZERO).await;
        let mut m = monitor(300, 0, 1, 1);
        m.r#type = MonitorType::Tcp;
        assert!(net_probe(m.clone())
            .probe(&target("p", "open", open))
            .await
            .is_ok());
        // A port nobody listens on: bind, note it, close.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let failed = net_probe(m).probe(&target("p", "closed", closed)).await;
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.starts_with("tcp connect:")),
            "{failed:?}"
        );
    }
}
