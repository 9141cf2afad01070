//! The real clients and servers from PyPI and npm that some tests drive: each set is
//! prepared by a script of its own (`scripts/{realtime,grpc,cloudflare}_tools.sh`, on
//! `scripts/python_tools.sh`) into Cargo's target directory, pinned, and found again at
//! once by its stamp. [`prepared_python`] runs such a script and returns the venv's python.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::tether::{accepts, run_to_end, wait_until, Ran};

/// Cargo's target directory (the parent of CARGO_TARGET_TMPDIR).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/<script>` (at most 10 minutes: the first run installs from the
/// registries; later runs find the stamp and return at once) and returns the python it
/// prints on its last line. Panics with the script's output and `needs` (what the tests
/// need, said to whoever reads the failure) when it fails.
pub fn prepared_python(script: &str, needs: &str) -> PathBuf {
    let ran = run_to_end(
        Command::new("bash")
            .arg(repo().join("scripts").join(script))
            .env("CARGO_TARGET_DIR", target_dir()),
        Duration::from_secs(600),
        &format!("scripts/{script}"),
    );
    let Ran { status, out, err } = &ran;
    if !ran.succeeded() {
        panic!("scripts/{script} failed ({status:?}): {needs}:\n{out}\n{err}");
    }
    let python = PathBuf::from(out.lines().last().unwrap_or("").trim());
    assert!(
        python.is_file(),
        "scripts/{script} printed no python: {python:?}:\n{out}\n{err}"
    );
    python
}

/// Waits (at most 30 s) until `child`, a server a test started, accepts on `addr`.
/// Panics, after stopping it, when it exits or never listens, with its `log` and `what`
/// it is (`"gRPC server a"`).
pub fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str, log: &Path) {
    let mut exited = false;
    let up = wait_until(Duration::from_secs(30), || {
        exited = child.try_wait().ok().flatten().is_some();
        exited || accepts(addr)
    });
    if exited || !up {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{what} not listening on {addr} (exited: {exited}):\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}
