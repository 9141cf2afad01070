//! Tether: options → configuration → server → services → run.
#![forbid(unsafe_code)]

/// jemalloc by default: measured 10-11% less CPU per request than glibc's
/// malloc (scripts/bench.sh, docs/benchmarks.md), with the same RSS.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::Path;
use std::process::exit;
use std::sync::Arc;

use log::{error, info, warn};
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::proxy::http_proxy;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use tether::admin;
use tether::affinity::cookie::CookieKeys;
use tether::changes::Changes;
use tether::cluster::{self, link::Link};
use tether::config::{self, SessionAffinity};
use tether::front_door::tls::{ListenerCertificates, SniResolver};
use tether::front_door::FrontDoor;
use tether::health::LiveMonitors;
use tether::proxy::Proxy;
use tether::services::reload::{Fixed, Reloader};
use tether::services::sweeper::Sweeper;
use tether::state::live::Live;
use tether::state::State;

fn main() {
    tether::logging::init();
    let args = <tether::cli::Args as clap::Parser>::parse();
    if let Some(command) = &args.command {
        exit(tether::cloudflare::command::run(
            command,
            args.conf.as_deref(),
            tether::changes::overlay::in_force,
        ));
    }
    let mut opt = args.into_opt();

    let Some(path) = opt.conf.take() else {
        eprintln!("tether: a configuration file is needed: tether -c FILE (conf/tether.yaml is the reference)");
        exit(2);
    };
    let loaded = match config::load_file(Path::new(&path)) {
        Ok(loaded) => loaded,
        Err(errors) => {
            let n = errors.0.len();
            eprintln!(
                "tether: {path}: {n} configuration error{}:",
                if n == 1 { "" } else { "s" }
            );
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            exit(1);
        }
    };
    let fixed = Fixed::of(&loaded);
    // Absolute: a daemonized tether runs in `/`, and SIGHUP reads the file again.
    let conf_path =
        std::fs::canonicalize(&path).unwrap_or_else(|_| std::path::PathBuf::from(&path));
    let tether = loaded.tether;
    tether::access_log::set_format(tether.access_log.format);
    let keys = match &tether.cookie_keys_file {
        Some(file) => match CookieKeys::from_file(file) {
            Ok(keys) => {
                info!(
                    "{} cookie key(s) loaded from {}",
                    keys.count(),
                    file.display()
                );
                keys
            }
            Err(e) => {
                eprintln!("tether: {path}: 1 configuration error:");
                eprintln!("  tether.cookie_keys_file: {}: {e}", file.display());
                exit(1);
            }
        },
        None => CookieKeys::random(),
    };
    // Certificates are loaded before `-t` answers and before `bootstrap()`
    // (which, with `-u`, takes the old process's sockets): a bad PEM never
    // replaces a running server.
    // Every pair is read and checked (the key matches its certificate), as a
    // reload does.
    let resolvers: Vec<Option<Arc<SniResolver>>> = tether
        .listeners
        .iter()
        .enumerate()
        .map(|(i, listener)| {
            let tls = listener.tls.as_ref()?;
            match ListenerCertificates::load(tls, i) {
                Ok(certificates) => Some(SniResolver::new(certificates)),
                Err(e) => {
                    eprintln!("tether: {path}: 1 configuration error:");
                    eprintln!("  {e}");
                    exit(1);
                }
            }
        })
        .collect();
    // The cluster's key, password and CA are read before `-t` answers too.
    let cluster_link = match &tether.cluster {
        None => None,
        Some(c) => match cluster::link::key(c).and_then(|key| Ok((cluster::link::client(c)?, key)))
        {
            Ok(pair) => Some(pair),
            Err(e) => {
                eprintln!("tether: {path}: 1 configuration error:");
                eprintln!("  {e}");
                exit(1);
            }
        },
    };
    let unshared_keys = tether.cookie_keys_file.is_none() && uses_cookies(&tether);
    const UNSHARED_KEYS: &str = "tether.cookie_keys_file is not set: __cflb cookies are signed with a random key made at start, so they will not survive a restart or be shared between instances (replicas)";
    if opt.test {
        if unshared_keys {
            eprintln!("tether: {path}: warning: {UNSHARED_KEYS}");
        }
        println!("configuration OK");
        exit(0);
    }
    if unshared_keys {
        warn!("{UNSHARED_KEYS}");
    }
    let live = Live::new(State::new(&tether, keys));
    let changes =
        Arc::new(Changes::new(Arc::clone(&live), tether.clone()).with_config_path(&conf_path));
    if let Some(path) = &tether.state_file {
        changes.restore(live.load().clock.now());
        info!("run-time changes are kept in {}", path.display());
    }
    // With a cluster: local changes are published through the link, pins
    // that deviate from the ring are queued for it (docs/replicas.md).
    let cluster = tether
        .cluster
        .as_ref()
        .zip(cluster_link)
        .map(|(c, (client, key))| {
            let status = Arc::new(cluster::Status::new(
                &c.name,
                tether.admin.as_ref().map(|a| a.address.clone()),
            ));
            let (outbox, inbox) = cluster::queues(Arc::clone(&status));
            let publisher = outbox.clone();
            changes.set_publisher(Box::new(move |batch| publisher.changes(batch)));
            let link = Link::new(
                client,
                key,
                Arc::clone(&changes),
                Arc::clone(&status),
                inbox,
            );
            info!(
                "cluster {}: replica {} shares run-time changes and session pins through Redis",
                c.name, status.replica
            );
            (status, outbox, link)
        });
    let mut server = Server::new_with_opt_and_conf(opt, loaded.server);
    server.bootstrap();

    let client_limits = Arc::new(arc_swap::ArcSwap::from_pointee(tether.client_limits));
    let mut proxy_app = Proxy::new(
        Arc::clone(&live),
        https_port(&tether),
        Arc::clone(&client_limits),
    );
    let mut cluster_status = None;
    if let Some((status, outbox, link)) = cluster {
        proxy_app = proxy_app.with_cluster(outbox);
        cluster_status = Some(status);
        server.add_service(background_service("tether cluster link", link));
    }
    let mut http = http_proxy(&server.configuration, proxy_app);
    // Plain listeners take HTTP/2 with prior knowledge (h2c, as gRPC
    // clients speak it) beside HTTP/1.1: the front door tells them apart by
    // the preface (docs/origins.md, "gRPC"). TLS listeners use ALPN.
    let mut server_options = pingora::apps::HttpServerOptions::default();
    server_options.h2c = true;
    // An HTTP/2 connection (h2c or ALPN h2) has none of the front door's
    // HTTP/1 deadlines: it is closed after `client_limits.idle_timeout`
    // with no request in flight (as read at start: a reload keeps it).
    server_options.h2_idle_timeout = Some(client_limits.load().idle_timeout);
    http.server_options = Some(server_options);
    let mut proxy = Service::new(
        "tether proxy".to_string(),
        FrontDoor::new(http, Arc::clone(&client_limits)),
    );
    for (listener, resolver) in tether.listeners.iter().zip(&resolvers) {
        match resolver {
            // No L4 read buffer on a plain listener: the front door reads the
            // first header itself and Pingora's HTTP session buffers its own
            // reads, so the stream's 64 KiB buffer only held a WebSocket's
            // memory (4.6 KiB resident each, docs/benchmarks.md).
            None => proxy.add_listener(
                ListenerConfig::tcp(&listener.address)
                    .l4_buffer(L4BufferSettings::default().read(0)),
            ),
            Some(resolver) => match resolver.settings() {
                Ok(settings) => proxy.add_tls_with_settings(&listener.address, None, settings),
                Err(e) => {
                    error!("tether.listeners ({}): {e}", listener.address);
                    exit(1);
                }
            },
        }
        info!("listening on {}", listener.address);
    }
    server.add_service(proxy);
    if let Some(admin) = &tether.admin {
        match admin::service(
            Arc::clone(&changes),
            admin,
            cluster_status,
            Arc::clone(&client_limits),
        ) {
            Ok(service) => {
                server.add_service(service);
            }
            Err(e) => {
                error!("{e}");
                exit(1);
            }
        }
        info!("admin API listening on {}", admin.address);
    }
    server.add_service(background_service(
        "tether monitors",
        LiveMonitors::new(Arc::clone(&live)),
    ));
    server.add_service(background_service(
        "tether dns refresh",
        tether::services::dns::DnsRefresher::new(Arc::clone(&live)),
    ));
    server.add_service(background_service(
        "tether session sweeper",
        Sweeper::new(Arc::clone(&live)),
    ));
    server.add_service(background_service(
        "tether upgraded connections closer",
        tether::services::upgraded::UpgradedCloser::new(Arc::clone(&live)),
    ));
    server.add_service(background_service(
        "tether reload (SIGHUP)",
        Reloader::new(
            conf_path,
            Arc::clone(&changes),
            Arc::clone(&client_limits),
            fixed,
            resolvers,
        ),
    ));
    server.add_service(background_service(
        "tether second stop signal",
        tether::services::stop::SecondSignal,
    ));
    server.run(RunArgs {
        shutdown_signal: Box::new(tether::services::stop::StopSignals),
    });
    exit(0);
}

/// The port `always_use_https` redirects to: the first TLS listener's.
fn https_port(tether: &config::Config) -> Option<u16> {
    let port = tether
        .listeners
        .iter()
        .filter(|l| l.tls.is_some())
        .find_map(|l| l.address.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port());
    if port.is_none() && tether.load_balancers.values().any(|lb| lb.always_use_https) {
        warn!(
            "always_use_https is set but no listener has tls: plain HTTP is redirected to port 443"
        );
    }
    port
}

fn uses_cookies(tether: &config::Config) -> bool {
    tether.load_balancers.values().any(|lb| {
        matches!(
            lb.session_affinity,
            SessionAffinity::Cookie | SessionAffinity::IpCookie
        )
    })
}
