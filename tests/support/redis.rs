//! A real `redis-server` (Debian's package, built with TLS; `scripts/test.sh`
//! installs it when missing) on a free loopback port, in its own directory,
//! without persistence. Stopped on Drop; [`Redis::kill`] and
//! [`Redis::restart`] play an outage (a restarted server is empty, as after
//! a crash). [`Redis::start_tls`] serves TLS only, with a CA and server
//! certificate made by `rcgen`; [`Redis::start_with_acl`] requires a
//! password and has an ACL user. [`Redis::connection`] is the test's own
//! (plain) connection, to play a forger.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::tether::{wait_exit, wait_for_port};
use super::upstream::free_port;

/// How the server is set up.
#[derive(Debug, Clone)]
enum Mode {
    Plain,
    /// TLS only (`--port 0`), server certificate signed by the CA at `ca`.
    Tls {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// `requirepass` for the default user, and an ACL user with its password.
    Acl {
        default_password: String,
        user: String,
        password: String,
    },
}

pub struct Redis {
    port: u16,
    dir: TempDir,
    mode: Mode,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits (bounded, 10 s) until it accepts connections.
    pub fn start() -> Redis {
        Self::start_mode(|_| Mode::Plain)
    }

    /// A server that speaks TLS only, its certificate (for 127.0.0.1 and
    /// `localhost`) signed by a CA generated here: [`Redis::ca_file`].
    /// Clients are not asked for certificates (`--tls-auth-clients no`).
    pub fn start_tls() -> Redis {
        Self::start_mode(|dir| {
            let ca = super::pki::TestCa::new("tether test CA");
            let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"], None);
            let (ca_path, cert_path, key_path) = (
                dir.join("ca.pem"),
                dir.join("server.pem"),
                dir.join("server.key"),
            );
            std::fs::write(&ca_path, ca.cert.pem()).expect("write ca.pem");
            std::fs::write(&cert_path, cert.pem()).expect("write server.pem");
            std::fs::write(&key_path, key.serialize_pem()).expect("write server.key");
            Mode::Tls {
                ca: ca_path,
                cert: cert_path,
                key: key_path,
            }
        })
    }

    /// A server whose default user needs `default_password`, with the ACL
    /// user `user` (password `password`, every key, channel and command).
    pub fn start_with_acl(default_password: &str, user: &str, password: &str) -> Redis {
        Self::start_mode(|_| Mode::Acl {
            default_password: default_password.to_string(),
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    fn start_mode(mode: impl FnOnce(&std::path::Path) -> Mode) -> Redis {
        let dir = TempDir::new().expect("a directory for redis-server");
        let mode = mode(dir.path());
        let mut redis = Redis {
            port: free_port(),
            dir,
            mode,
            child: None,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>/0`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Tls { .. } => format!("rediss://127.0.0.1:{}/0", self.port),
            _ => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The CA that signed a TLS server's certificate (PEM).
    pub fn ca_file(&self) -> String {
        match &self.mode {
            Mode::Tls { ca, .. } => ca.display().to_string(),
            _ => panic!("not a TLS server"),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The test's own connection (plain servers; the default user's
    /// password for an ACL server).
    pub fn connection(&self) -> ::redis::Connection {
        let url = match &self.mode {
            Mode::Acl {
                default_password, ..
            } => format!("redis://:{default_password}@127.0.0.1:{}/0", self.port),
            Mode::Plain => self.url(),
            Mode::Tls { .. } => panic!("the test's connection is plain"),
        };
        ::redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("a connection to the test's redis-server")
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
        let mut cmd = Command::new("redis-server");
        match &self.mode {
            Mode::Plain => {
                cmd.args(["--port", &self.port.to_string()]);
            }
            Mode::Tls { ca, cert, key } => {
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca)
                    .args(["--tls-auth-clients", "no"]);
            }
            Mode::Acl {
                default_password,
                user,
                password,
            } => {
                cmd.args(["--port", &self.port.to_string()])
                    .args(["--requirepass", default_password])
                    .args([
                        "--user",
                        user,
                        "on",
                        &format!(">{password}"),
                        "~*",
                        "&*",
                        "+@all",
                    ]);
            }
        }
        let child = cmd
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
