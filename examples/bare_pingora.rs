//! The framework's floor for benchmarks: a minimal Pingora `ProxyHttp` that
//! round-robins over the upstreams it is given, with nothing of Tether's.
//! `scripts/bench.sh` runs it beside Tether so Tether's own overhead can be
//! read as a ratio. Like every proxy in the benchmark it adds
//! `X-Forwarded-For`, `-Proto` and `-Host`, and it uses Tether's allocator.
//!
//!     cargo run --release --example bare_pingora -- -c conf.yaml [--peer-timeouts] [--log] [--l4-read BYTES] LISTEN UPSTREAM...
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
//! WebSocket").

use std::sync::atomic::{AtomicUsize, Ordering};

/// The same allocator as Tether's binary (feature `jemalloc`, on by default),
/// so the ratio measures Tether's own work, not an allocator difference.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
// Tether's default upstream timeouts, for `--peer-timeouts` (the values
// only: nothing else of Tether runs here).
use tether::config::UpstreamTimeouts;

struct RoundRobin {
    upstreams: Vec<std::net::SocketAddr>,
    next: AtomicUsize,
    peer_timeouts: bool,
    log: bool,
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
        let mut peer = HttpPeer::new(self.upstreams[i], false, String::new());
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
    eprintln!("usage: bare_pingora -c PINGORA_CONF [--peer-timeouts] [--log] [--l4-read BYTES] LISTEN_ADDR UPSTREAM_ADDR...");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (conf_path, mut rest) = match args.as_slice() {
        [flag, conf, rest @ ..] if flag == "-c" => (conf, rest),
        _ => usage(),
    };
    let (mut peer_timeouts, mut log, mut l4_read) = (false, false, None);
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
