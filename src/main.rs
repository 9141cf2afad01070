//! Tether: options → configuration → server → services → run.
#![forbid(unsafe_code)]

mod balance;
mod config;
mod monitor;
mod proxy;
mod request;
mod select;
mod state;

use std::path::Path;
use std::process::exit;
use std::sync::Arc;

use log::{error, info};
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;

use crate::monitor::Monitors;
use crate::proxy::Proxy;
use crate::state::State;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut opt = Opt::parse_args();

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
    if opt.test {
        println!("configuration OK");
        exit(0);
    }

    let tether = loaded.tether;
    warn_unbuilt(&tether);
    let state = Arc::new(State::new(&tether));
    let mut server = Server::new_with_opt_and_conf(opt, loaded.server);
    server.bootstrap();

    let mut proxy = http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(Arc::clone(&state)),
        "tether proxy",
    );
    for listener in &tether.listeners {
        match &listener.tls {
            None => proxy.add_tcp(&listener.address),
            Some(tls) => {
                let (cert, key) = (
                    tls.cert_path.to_string_lossy(),
                    tls.key_path.to_string_lossy(),
                );
                if let Err(e) = proxy.add_tls(&listener.address, &cert, &key) {
                    error!(
                        "listener {}: cannot load TLS certificate {cert} / key {key}: {e}",
                        listener.address
                    );
                    exit(1);
                }
            }
        }
        info!("listening on {}", listener.address);
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "tether monitors",
        Monitors::new(Arc::clone(&state), &tether),
    ));
    server.run_forever();
}

/// Keys that validate but whose behaviour is not built yet: say so at start
/// rather than let an operator believe they act.
fn warn_unbuilt(tether: &config::Config) {
    use config::SessionAffinity;
    if let Some(admin) = &tether.admin {
        log::warn!(
            "tether.admin ({}): the admin API is not built yet; no admin listener is started",
            admin.address
        );
    }
    if tether.state_file.is_some() {
        log::warn!("tether.state_file: run-time state is not persisted yet");
    }
    for lb in tether.load_balancers.values() {
        if lb.session_affinity != SessionAffinity::None {
            log::warn!(
                "load balancer {}: session_affinity {:?} is not built yet; requests are routed without affinity",
                lb.name,
                lb.session_affinity
            );
        }
    }
}
