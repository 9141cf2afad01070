//! A demo upstream for `scripts/demo.sh`: the same server the integration tests use.
//!
//! ```text
//! cargo run --example demo_upstream -- <name> <listen-addr>
//! cargo run --example demo_upstream -- web-1 127.0.0.1:9001
//! ```
//!
//! Answers `GET /health` with `200 ok`, `/echo` with the request as JSON, anything else
//! with its name (and an `x-upstream: <name>` header). Runs until SIGINT or SIGTERM.

// The test support's waits measure real time on purpose (see clippy.toml).
#[allow(clippy::disallowed_methods)]
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::process::ExitCode;

use upstream::Upstream;

const USAGE: &str = "usage: demo_upstream <name> <listen-addr>   (e.g. web-1 127.0.0.1:9001)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, addr) = match args.as_slice() {
        [name, addr] if !name.is_empty() && !name.starts_with('-') => {
            match addr.parse::<SocketAddr>() {
                Ok(addr) => (name.clone(), addr),
                Err(e) => {
                    eprintln!("demo_upstream: bad listen address {addr:?}: {e}\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let up = match Upstream::try_start_on(&name, addr) {
        Ok(up) => up,
        Err(e) => {
            eprintln!("demo_upstream: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("demo upstream {} listening on {}", up.name(), up.addr());

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo_upstream: cannot start the signal runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    });
    up.stop();
    match signal {
        Ok(signal) => {
            println!(
                "demo upstream {name} stopped ({signal}), {} requests served",
                up.requests()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo_upstream: cannot wait for signals: {e}");
            ExitCode::FAILURE
        }
    }
}
