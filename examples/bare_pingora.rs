//! The framework's floor for benchmarks: a minimal Pingora `ProxyHttp` that
//! round-robins over the upstreams it is given, with nothing of Tether's.
//! `scripts/bench.sh` runs it beside Tether so Tether's own overhead can be
//! read as a ratio. Like every proxy in the benchmark it adds
//! `X-Forwarded-For`, `-Proto` and `-Host`, and it uses Tether's allocator.
//!
//!     cargo run --release --example bare_pingora -- -c conf.yaml [--peer-timeouts] [--log] [--l4-read BYTES]
//!         [--upstream-tls CA_PEM SERVER_NAME | --upstream-h2c] LISTEN UPSTREAM...
//!
//! `-c` takes a Pingora config file (threads, keep-alive pool, ...), so both
//! proxies run with the same Pingora settings. Two opt-in variants measure
//! what Tether pays for on top of the framework (docs/benchmarks.md, "where
//! the gap goes"); without them the example is the floor as shipped:
//! `--peer-timeouts` sets the four upstream timeouts Tether sets by default
//! (`UpstreamTimeouts::default()`: connect 5 s, read 100 s, write 100 s, idle 90 s), and `--log` writes one
//! env_logger line per request to stderr, the plain way. `--l4-read BYTES`
//! sets the listener's L4 read buffer (Pingora's `L4BufferSettings`; its
//! default is 64 KiB), as Tether sets it (docs/benchmarks.md, "Memory per
//! WebSocket"). Two opt-in upstream protocols serve the origins rows
//! (`scripts/bench.sh --origins`): `--upstream-tls CA_PEM SERVER_NAME` speaks
//! HTTPS to the upstreams, verifying their certificate against the CA in
//! `CA_PEM` for `SERVER_NAME` (also the SNI), as a Tether pool with
//! `tls: {verify: true, ca_path, server_name}` does; `--upstream-h2c` speaks
//! HTTP/2 with prior knowledge over plaintext, up to 100 streams a connection
//! as a pool with `protocol: h2c` does. Without either, upstreams get
//! plaintext HTTP/1.1, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The same allocator as Tether's binary (feature `jemalloc`, on by default),
/// so the ratio measures Tether's own work, not an allocator difference.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::protocols::tls::CaType;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::utils::tls::{parse_x509, WrappedX509};
// Tether's default upstream timeouts, for `--peer-timeouts` (the values
// only: nothing else of Tether runs here).
use tether::config::UpstreamTimeouts;

struct RoundRobin {
    upstreams: Vec<std::net::SocketAddr>,
    next: AtomicUsize,
    peer_timeouts: bool,
    log: bool,
    upstream: Upstream,
}

/// How the proxy speaks to its upstreams.
enum Upstream {
    /// Plaintext HTTP/1.1: the floor as shipped.
    Plain,
    /// HTTP/1.1 over TLS, the certificate verified against `ca` for `server_name`.
    Tls {
        ca: Arc<CaType>,
        server_name: String,
    },
    /// HTTP/2 over plaintext, prior knowledge (h2c).
    H2c,
}

#[async_trait]
impl ProxyHttp for RoundRobin {
    type CTX = ();
    fn new_ctx(&self) {}

    /// The forwarding headers every proxy in the benchmark adds (HAProxy's
    /// `option forwardfor`, NGINX's `proxy_set_header`, Tether's), so the
    /// floor does the same work on the wire.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        if let Some(ip) = client {
            req.insert_header("X-Forwarded-For", ip)?;
        }
        req.insert_header("X-Forwarded-Proto", "http")?;
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        if let Some(host) = host {
            req.insert_header("X-Forwarded-Host", host)?;
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        let addr = self.upstreams[i];
        let mut peer = match &self.upstream {
            Upstream::Plain => HttpPeer::new(addr, false, String::new()),
            Upstream::Tls { ca, server_name } => {
                let mut peer = HttpPeer::new(addr, true, server_name.clone());
                peer.options.verify_cert = true;
                peer.options.verify_hostname = true;
                peer.options.ca = Some(ca.clone());
                peer
            }
            Upstream::H2c => {
                let mut peer = HttpPeer::new(addr, false, String::new());
                peer.options.set_http_version(2, 2);
                // As a Tether pool with `protocol: h2c` (src/proxy/upstream.rs,
                // MAX_H2_STREAMS): up to 100 streams a connection, where
                // Pingora's default is one.
                peer.options.max_h2_streams = 100;
                peer
            }
        };
        if self.peer_timeouts {
            let t = UpstreamTimeouts::default();
            peer.options.connection_timeout = Some(t.connect);
            peer.options.read_timeout = Some(t.read);
            peer.options.write_timeout = Some(t.write);
            peer.options.idle_timeout = Some(t.idle);
        }
        Ok(Box::new(peer))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, _ctx: &mut ()) {
        if !self.log {
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        log::info!(
            "client={} method={} path={} status={status}",
            session.client_addr().map_or("-".into(), |a| a.to_string()),
            req.method,
            req.uri
        );
    }
}

fn usage() -> ! {
    eprintln!("usage: bare_pingora -c PINGORA_CONF [--peer-timeouts] [--log] [--l4-read BYTES] [--upstream-tls CA_PEM SERVER_NAME | --upstream-h2c] LISTEN_ADDR UPSTREAM_ADDR...");
    std::process::exit(2)
}

/// Every PEM certificate in `path`, as Pingora's rustls connector takes them.
fn read_ca(path: &str) -> Arc<CaType> {
    use rustls_pki_types::pem::PemObject;
    let certs = pingora::tls::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| {
            eprintln!("bare_pingora: {path}: {e}");
            std::process::exit(1)
        });
    if certs.is_empty() {
        eprintln!("bare_pingora: {path} holds no PEM certificate");
        std::process::exit(1)
    }
    let ca: Vec<WrappedX509> = certs
        .into_iter()
        .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
        .collect();
    ca.into()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (conf_path, mut rest) = match args.as_slice() {
        [flag, conf, rest @ ..] if flag == "-c" => (conf, rest),
        _ => usage(),
    };
    let (mut peer_timeouts, mut log, mut l4_read) = (false, false, None);
    let mut upstream = Upstream::Plain;
    while let Some((first, more)) = rest.split_first() {
        match first.as_str() {
            "--peer-timeouts" => peer_timeouts = true,
            "--log" => log = true,
            "--l4-read" => {
                let Some((bytes, more)) = more.split_first() else {
                    usage()
                };
                l4_read = Some(bytes.parse::<usize>().unwrap_or_else(|_| usage()));
                rest = more;
                continue;
            }
            "--upstream-tls" => {
                let [ca_path, server_name, more @ ..] = more else {
                    usage()
                };
                upstream = Upstream::Tls {
                    ca: read_ca(ca_path),
                    server_name: server_name.clone(),
                };
                rest = more;
                continue;
            }
            "--upstream-h2c" => upstream = Upstream::H2c,
            _ => break,
        }
        rest = more;
    }
    if rest.len() < 2 {
        usage()
    }
    if log {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    }
    let conf = ServerConf::load_from_yaml(conf_path.as_str()).unwrap_or_else(|e| {
        eprintln!("bare_pingora: {conf_path}: {e}");
        std::process::exit(1)
    });
    let listen = &rest[0];
    let upstreams = rest[1..]
        .iter()
        .map(|a| a.parse().unwrap_or_else(|_| usage()))
        .collect();
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        RoundRobin {
            upstreams,
            next: AtomicUsize::new(0),
            peer_timeouts,
            log,
            upstream,
        },
    );
    match l4_read {
        None => proxy.add_tcp(listen),
        Some(read) => proxy.add_listener(
            ListenerConfig::tcp(listen.as_str()).l4_buffer(L4BufferSettings::default().read(read)),
        ),
    }
    server.add_service(proxy);
    server.run_forever();
}
