//! A real `redis-server` (Debian's package; `scripts/test.sh` installs it
//! when missing) on a free loopback port, in its own directory, without
//! persistence. Stopped on Drop; [`Redis::kill`] and [`Redis::restart`]
//! play an outage (a restarted server is empty, as after a crash).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::tether::{wait_exit, wait_for_port};
use super::upstream::free_port;

pub struct Redis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits (bounded, 10 s) until it accepts connections.
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: TempDir::new().expect("a directory for redis-server"),
            child: None,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGKILL, as a crash (no-op when not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            wait_exit(&mut child, Duration::from_secs(10));
        }
    }

    /// Starts the server (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let log = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): apt-get install -y redis-server (scripts/test.sh installs it)")
            });
        self.child = Some(child);
        assert!(
            wait_for_port(self.addr(), Duration::from_secs(10)),
            "redis-server did not accept on {} within 10 s: {}",
            self.addr(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
