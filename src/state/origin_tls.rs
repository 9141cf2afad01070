//! TLS to endpoints (`pools.<name>.tls`, docs/origins.md): the decisions,
//! pure — the name a connection asks for and verifies, and what a failed
//! handshake is called in the log and the metrics.

use std::net::SocketAddr;

use crate::config::{Endpoint, LoadedTls, PoolTls};

/// How a monitor of `type: https` reaches an endpoint of a pool with `tls`:
/// the pool's name, verification, CA and client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTls {
    pub server_name: String,
    pub verify: bool,
    pub loaded: LoadedTls,
}

impl ProbeTls {
    /// For `endpoint` at `addr` (a probe has no request: no request Host).
    pub fn new(tls: &PoolTls, endpoint: &Endpoint, addr: SocketAddr) -> ProbeTls {
        ProbeTls {
            server_name: server_name(tls, endpoint, None, addr),
            verify: tls.verify,
            loaded: tls.loaded.clone(),
        }
    }
}

/// A peer to `addr` over TLS as a pool's `tls` says: `server_name` asked
/// for (SNI) and, when `verify`, verified against the pool's CA (the
/// system's roots without one); the pool's client certificate presented.
/// Pingora's pool key hashes the name, both verify flags and the client
/// certificate, so connections for different names are never shared, but
/// not the CA: the CA bundle's fingerprint is the peer's `group_key`, so a
/// reload to another bundle takes effect on the next connection asked for,
/// not after the idle timeout. The proxy, `https` monitors and `grpc`
/// monitors all build their TLS peers here.
pub fn tls_peer(
    addr: SocketAddr,
    server_name: String,
    verify: bool,
    loaded: &LoadedTls,
) -> pingora::upstreams::peer::HttpPeer {
    let mut peer = pingora::upstreams::peer::HttpPeer::new(addr, true, server_name);
    peer.options.verify_cert = verify;
    peer.options.verify_hostname = verify;
    peer.options.ca = loaded.ca.clone();
    peer.client_cert_key = loaded.client_cert_key.clone();
    peer.group_key = loaded.ca_fingerprint;
    peer
}

/// The TLS server name (SNI, and the name the certificate must carry when
/// `verify` is on) for a connection to `endpoint`, first found of:
/// the endpoint's `server_name`; the pool's `tls.server_name`; the host name
/// of the endpoint's `address` when it is a name; the endpoint's
/// `header.Host`; the request's `Host` (`request_host`, the Host sent
/// upstream when the endpoint sets none); the IP address connected to.
/// Never empty: Pingora verifies nothing for an empty name.
pub fn server_name(
    tls: &PoolTls,
    endpoint: &Endpoint,
    request_host: Option<&str>,
    addr: SocketAddr,
) -> String {
    if let Some(name) = endpoint.server_name.as_ref().or(tls.server_name.as_ref()) {
        return name.clone();
    }
    if endpoint.address.parse::<SocketAddr>().is_err() {
        if let Some((host, _)) = endpoint.address.rsplit_once(':') {
            if !host.is_empty() {
                return host.to_string();
            }
        }
    }
    endpoint
        .host
        .as_deref()
        .or(request_host)
        .map(without_port)
        .filter(|h| !h.is_empty())
        .map_or_else(|| addr.ip().to_string(), str::to_string)
}

/// `host[:port]` or `[v6][:port]` → the host (an IPv6 address unbracketed).
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Why a TLS connection to an endpoint failed, the `reason` label of
/// `tether_upstream_tls_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The endpoint's certificate was refused: unknown issuer, wrong name,
    /// expired (rustls's `invalid peer certificate`).
    Certificate,
    /// The endpoint refused the handshake with an alert (e.g. no client
    /// certificate, or one it does not trust).
    Alert,
    /// Anything else in the handshake (not TLS, protocol errors, reset).
    /// A handshake slower than `upstream_timeouts.connect` is Pingora's
    /// `ConnectTimedout`, a plain connect failure, not counted here.
    Handshake,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 3] = [
        TlsFailure::Certificate,
        TlsFailure::Alert,
        TlsFailure::Handshake,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Certificate => "certificate",
            TlsFailure::Alert => "alert",
            TlsFailure::Handshake => "handshake",
        }
    }

    /// From Pingora's error type name (`ErrorType::as_str`) and the error's
    /// text; `None` when the failure is not TLS's (refused, TCP timeout).
    pub fn classify(etype: &str, text: &str) -> Option<TlsFailure> {
        match etype {
            "InvalidCert" => Some(TlsFailure::Certificate),
            "TLSHandshakeFailure" | "TLSHandshakeTimedout" | "HandshakeError" => {
                Some(if text.contains("invalid peer certificate") {
                    TlsFailure::Certificate
                } else if text.contains("received fatal alert") {
                    TlsFailure::Alert
                } else {
                    TlsFailure::Handshake
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "10.0.0.1:443".parse().unwrap()
    }

    #[test]
    fn endpoint_then_pool_name_first() {
        let mut e = Endpoint::at("a", "api-2.internal:443");
        let mut tls = PoolTls {
            server_name: Some("pool.internal".into()),
            ..PoolTls::default()
        };
        e.server_name = Some("own.internal".into());
        assert_eq!(server_name(&tls, &e, Some("x"), addr()), "own.internal");
        e.server_name = None;
        assert_eq!(server_name(&tls, &e, Some("x"), addr()), "pool.internal");
        tls.server_name = None;
        assert_eq!(server_name(&tls, &e, Some("x"), addr()), "api-2.internal");
    }

    #[test]
    fn an_ip_address_falls_back_to_host_then_request_then_ip() {
        let tls = PoolTls::default();
        let mut e = Endpoint::at("a", "10.0.0.1:443");
        assert_eq!(
            server_name(&tls, &e, Some("www.example.com:8443"), addr()),
            "www.example.com"
        );
        assert_eq!(server_name(&tls, &e, None, addr()), "10.0.0.1");
        assert_eq!(server_name(&tls, &e, Some(""), addr()), "10.0.0.1");
        e.host = Some("app.internal:8080".into());
        assert_eq!(
            server_name(&tls, &e, Some("www.example.com"), addr()),
            "app.internal"
        );
        assert_eq!(
            server_name(&tls, &e, None, "[::1]:443".parse().unwrap()),
            "app.internal"
        );
        e.host = None;
        assert_eq!(
            server_name(&tls, &e, Some("[::1]:443"), "[::1]:443".parse().unwrap()),
            "::1"
        );
    }

    #[test]
    fn failures_are_classified() {
        let c = TlsFailure::classify;
        assert_eq!(
            c(
                "TLSHandshakeFailure",
                "TLS connect() failed: invalid peer certificate: NotValidForName"
            ),
            Some(TlsFailure::Certificate)
        );
        assert_eq!(
            c(
                "TLSHandshakeFailure",
                "received fatal alert: CertificateRequired"
            ),
            Some(TlsFailure::Alert)
        );
        assert_eq!(
            c("TLSHandshakeFailure", "corrupt message"),
            Some(TlsFailure::Handshake)
        );
        assert_eq!(c("InvalidCert", ""), Some(TlsFailure::Certificate));
        assert_eq!(c("TLSHandshakeTimedout", ""), Some(TlsFailure::Handshake));
        assert_eq!(c("ConnectRefused", "refused"), None);
        assert_eq!(c("ConnectTimedout", ""), None);
    }
}
