//! Running the `tether` binary under test: a process per test, its config file, pid file,
//! upgrade socket and logs in a fresh temporary directory.
//!
//! Every wait here is a bounded poll; every process is SIGKILLed on Drop if still alive.

use std::fs;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::config::Tether;

/// The binary Cargo built for this test run.
pub const TETHER_BIN: &str = env!("CARGO_BIN_EXE_tether");

/// How often every wait in this module re-checks.
pub const POLL: Duration = Duration::from_millis(20);
/// How long [`TetherBuilder::start`] waits for the listener(s).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`TetherProc::terminate`] waits for the exit after SIGTERM.
pub const TERM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`check_config`] lets `tether -t` run.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `cond` every 20 ms until it is true (→ `true`) or `timeout` has passed (→ `false`,
/// after one last check).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a TCP connect to `addr` succeeds within 200 ms.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Polls until `addr` accepts a TCP connection, at most `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || accepts(addr))
}

/// Where to connect to reach a listen address as written in the config: `0.0.0.0:p` and
/// `[::]:p` become the loopback address of the same family.
pub fn connect_addr(listen: &str) -> SocketAddr {
    let mut addr = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("not a socket address: {listen:?}"));
    if addr.ip().is_unspecified() {
        let loopback = match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        addr.set_ip(loopback);
    }
    addr
}

/// Removes the common leading indentation of the non-blank lines, then indents every
/// non-blank line by `indent` spaces. Lets callers write YAML in indented raw strings.
pub fn reindent(yaml: &str, indent: usize) -> String {
    let common = yaml
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for line in yaml.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str(&pad);
            out.push_str(&line[common..]);
            out.push('\n');
        }
    }
    out
}

/// The Pingora part of a test config: `version: 1`, `threads`, `pid_file` and `upgrade_sock`
/// inside `dir`, and the two shutdown timers.
pub fn pingora_keys(
    dir: &Path,
    threads: usize,
    grace_period: u64,
    shutdown_timeout: u64,
) -> String {
    format!(
        "version: 1\n\
         threads: {threads}\n\
         pid_file: {pid:?}\n\
         upgrade_sock: {sock:?}\n\
         grace_period_seconds: {grace_period}\n\
         graceful_shutdown_timeout_seconds: {shutdown_timeout}\n",
        pid = dir.join("tether.pid").display().to_string(),
        sock = dir.join("upgrade.sock").display().to_string(),
    )
}

/// A whole test config file: the default [`pingora_keys`] (2 threads, grace 0, shutdown
/// timeout 1 s) and `tether:` holding `section` (unindented YAML, see [`reindent`]).
pub fn wrap_config(dir: &Path, section: &str) -> String {
    format!(
        "{}\ntether:\n{}",
        pingora_keys(dir, 2, 0, 1),
        reindent(section, 2)
    )
}

/// Runs `tether <args>` to completion (killed after `timeout`, then panics): exit code
/// (`-1` when ended by a signal), stdout, stderr.
pub fn run_tether(args: &[&str], timeout: Duration) -> (i32, String, String) {
    let Ran { status, out, err } = run_to_end(
        Command::new(TETHER_BIN).args(args).env("RUST_LOG", "info"),
        timeout,
        TETHER_BIN,
    );
    match status {
        Some(status) => (status.code().unwrap_or(-1), out, err),
        None => panic!(
            "`tether {}` still running after {timeout:?}; killed.\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            args.join(" ")
        ),
    }
}

/// What a finished helper process said: its exit status (`None`: it did not end within
/// its time and was killed), stdout and stderr.
pub struct Ran {
    pub status: Option<ExitStatus>,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `command` (stdin closed, stdout and stderr to files) for at most `timeout`,
/// killing it then; `what` names it if it cannot start.
pub fn run_to_end(command: &mut Command, timeout: Duration, what: &str) -> Ran {
    let dir = TempDir::new().expect("create a temporary directory");
    let (out_path, err_path) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let status = wait_exit(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ran {
        status,
        out: read_lossy(&out_path),
        err: read_lossy(&err_path),
    }
}

/// `tether -t -c <file>` where the file holds exactly `full_yaml` (NOT wrapped): exit code,
/// stdout, stderr. At most 30 s.
pub fn check_config(full_yaml: &str) -> (i32, String, String) {
    let dir = TempDir::new().expect("create a temporary directory");
    let path = dir.path().join("check.yaml");
    write(&path, full_yaml);
    let path = path.display().to_string();
    run_tether(&["-t", "-c", &path], CHECK_TIMEOUT)
}

/// [`check_config`] of `section` wrapped by [`wrap_config`] (the tether section, unindented).
pub fn check_section(section: &str) -> (i32, String, String) {
    let dir = TempDir::new().expect("create a temporary directory");
    check_config(&wrap_config(dir.path(), section))
}

/// How to start a [`TetherProc`]; see [`TetherProc::builder`].
#[derive(Debug, Clone)]
pub struct TetherBuilder {
    section: String,
    listen: Option<String>,
    threads: usize,
    grace_period: u64,
    shutdown_timeout: u64,
    /// Leave both shutdown timers out of the file (Tether's defaults apply).
    default_grace: bool,
    extra_pingora: String,
    envs: Vec<(String, String)>,
    args: Vec<String>,
}

impl TetherBuilder {
    /// The address to wait for (default: `tether.listeners[0].address` of the section).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_string());
        self
    }

    /// Pingora `threads` (default 2).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Pingora `grace_period_seconds` and `graceful_shutdown_timeout_seconds` (default 0, 1).
    pub fn grace(mut self, period_seconds: u64, shutdown_timeout_seconds: u64) -> Self {
        self.grace_period = period_seconds;
        self.shutdown_timeout = shutdown_timeout_seconds;
        self
    }

    /// No `grace_period_seconds` or `graceful_shutdown_timeout_seconds` in the
    /// file: Tether's defaults apply, as for a user who never heard of them.
    pub fn default_grace(mut self) -> Self {
        self.default_grace = true;
        self
    }

    /// More top-level Pingora keys (unindented YAML), e.g. `upstream_keepalive_pool_size: 8`.
    /// Must not repeat the keys set by the builder.
    pub fn pingora(mut self, yaml: &str) -> Self {
        self.extra_pingora.push_str(&reindent(yaml, 0));
        self
    }

    /// An environment variable for the process (`RUST_LOG` defaults to `info`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// An extra command-line argument, after `-c <file>`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// The complete config file text this builder writes (into `dir`).
    pub fn config_text(&self, dir: &Path) -> String {
        let mut pingora = pingora_keys(dir, self.threads, self.grace_period, self.shutdown_timeout);
        if self.default_grace {
            pingora = pingora
                .lines()
                .filter(|l| !l.starts_with("grace") && !l.starts_with("graceful"))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        format!(
            "{}{}\ntether:\n{}",
            pingora,
            self.extra_pingora,
            reindent(&self.section, 2)
        )
    }

    /// Starts the process without waiting for anything (for configs that must fail, or
    /// when the caller waits itself).
    pub fn spawn(self) -> TetherProc {
        let dir = Arc::new(TempDir::new().expect("create a temporary directory"));
        self.spawn_in(dir, &[])
    }

    /// Starts the process and waits (bounded, 15 s) until its listener accepts TCP
    /// connections, and the admin listener too when the section has one. Panics with
    /// the process's logs if it exits or the time runs out.
    pub fn start(self) -> TetherProc {
        let listen = self.listen.clone().unwrap_or_else(|| {
            first_listener(&self.section).unwrap_or_else(|| {
                panic!(
                    "no tether.listeners[0].address found in the section; \
                     use TetherProc::builder(..).listen(addr)\n{}",
                    self.section
                )
            })
        });
        let admin = admin_address(&self.section);
        let mut proc = self.spawn();
        proc.listen = Some(listen.clone());
        let mut targets = vec![connect_addr(&listen)];
        targets.extend(admin.as_deref().map(connect_addr));
        proc.wait_accepting(&targets, START_TIMEOUT);
        proc
    }

    fn spawn_in(self, dir: Arc<TempDir>, pre_args: &[&str]) -> TetherProc {
        let n = SPAWNED.fetch_add(1, Ordering::SeqCst);
        let config_path = dir.path().join(format!("tether.{n}.yaml"));
        let stdout_path = dir.path().join(format!("stdout.{n}.log"));
        let stderr_path = dir.path().join(format!("stderr.{n}.log"));
        write(&config_path, &self.config_text(dir.path()));

        let mut cmd = Command::new(TETHER_BIN);
        cmd.args(pre_args)
            .arg("-c")
            .arg(&config_path)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(create(&stdout_path))
            .stderr(create(&stderr_path));
        for (key, value) in &self.envs {
            cmd.env(key, value);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {TETHER_BIN}: {e}"));
        TetherProc {
            admin: admin_address(&self.section),
            listen: self
                .listen
                .clone()
                .or_else(|| first_listener(&self.section)),
            builder: self,
            dir,
            child,
            exit: None,
            config_path,
            stdout_path,
            stderr_path,
        }
    }
}

/// Numbers the files of the processes of one test binary.
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// A running `tether` process. Drop SIGKILLs it if it is still running.
pub struct TetherProc {
    builder: TetherBuilder,
    /// Shared with the processes of a hot upgrade, so the files outlive both.
    dir: Arc<TempDir>,
    child: Child,
    exit: Option<ExitStatus>,
    listen: Option<String>,
    admin: Option<String>,
    config_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl TetherProc {
    /// Starts tether with `tether_section` as the content of the `tether:` key, written
    /// UNINDENTED (common indentation is removed, then each line is indented by two
    /// spaces; see [`reindent`]), after the default Pingora keys of [`wrap_config`]. Waits
    /// for `tether.listeners[0].address` (and `tether.admin.address` if any) to accept,
    /// bounded 15 s; panics with the logs on failure.
    pub fn start(tether_section: &str) -> TetherProc {
        Self::builder(tether_section).start()
    }

    /// As [`TetherProc::start`], waiting for `listen_addr` instead of the first listener.
    pub fn start_with(tether_section: &str, listen_addr: &str) -> TetherProc {
        Self::builder(tether_section).listen(listen_addr).start()
    }

    /// For other Pingora keys, environment, arguments, or [`TetherBuilder::spawn`].
    pub fn builder(tether_section: &str) -> TetherBuilder {
        TetherBuilder {
            section: tether_section.to_string(),
            listen: None,
            threads: 2,
            grace_period: 0,
            shutdown_timeout: 1,
            default_grace: false,
            extra_pingora: String::new(),
            envs: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding config, logs, pid file and upgrade socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pingora's `upgrade_sock` of this process.
    pub fn upgrade_sock(&self) -> PathBuf {
        self.dir.path().join("upgrade.sock")
    }

    /// The listen address as written in the config (first listener unless overridden).
    pub fn listen_addr(&self) -> &str {
        self.listen
            .as_deref()
            .expect("no listener address known for this process")
    }

    /// Where to connect to reach the listener.
    pub fn addr(&self) -> SocketAddr {
        connect_addr(self.listen_addr())
    }

    /// `http://<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    /// `http://<tether.admin.address><path>`; panics if the config has no admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self
            .admin
            .as_deref()
            .expect("the config has no tether.admin.address");
        format!("http://{}{}", connect_addr(admin), path)
    }

    /// Where to connect to reach the admin listener; panics if the config has none.
    pub fn admin_addr(&self) -> SocketAddr {
        connect_addr(
            self.admin
                .as_deref()
                .expect("the config has no tether.admin.address"),
        )
    }

    /// The admin listener's `host:port`, a `Host` a tokenless admin listener answers.
    pub fn admin_host(&self) -> String {
        self.admin_addr().to_string()
    }

    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// stderr followed by stdout (env_logger writes to stderr).
    pub fn logs(&self) -> String {
        let mut logs = self.stderr();
        logs.push_str(&self.stdout());
        logs
    }

    /// The log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Polls the logs until they contain `needle` (→ `true`) or `timeout` passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.logs().contains(needle))
    }

    /// Polls the logs until `pred(logs)` holds (→ `true`) or `timeout` passes.
    pub fn wait_for_logs(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        wait_until(timeout, || pred(&self.logs()))
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot poll tether (pid {}): {e}", self.pid()));
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Polls until the process exits (→ its status) or `timeout` passes (→ `None`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = wait_exit(&mut self.child, timeout);
        }
        self.exit
    }

    /// Sends a signal with the `kill` command: `"TERM"`, `"QUIT"`, `"INT"`, `"KILL"`, ...
    /// Panics if `kill` fails while the process is still running.
    /// Rewrites this process's configuration file with `tether_section` (same
    /// Pingora keys), e.g. before a SIGHUP reload.
    pub fn rewrite_config(&self, tether_section: &str) {
        let mut builder = self.builder.clone();
        builder.section = tether_section.to_string();
        fs::write(&self.config_path, builder.config_text(self.dir()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config_path.display()));
    }

    pub fn signal(&mut self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill`: {e}"));
        if !status.success() && self.is_running() {
            panic!("`kill -s {signal} {pid}` failed: {status}");
        }
    }

    /// SIGTERM, then waits (bounded, 10 s) for the exit and returns its status. If the
    /// process does not exit in time it is SIGKILLed and this panics with its logs.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit() {
            return status;
        }
        self.signal("TERM");
        match self.wait_exit(TERM_TIMEOUT) {
            Some(status) => status,
            None => {
                self.kill();
                panic!(
                    "tether (pid {}) did not exit within {TERM_TIMEOUT:?} of SIGTERM; killed.\n{}",
                    self.pid(),
                    self.describe()
                )
            }
        }
    }

    /// SIGKILL (if still running) and reap.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// Hot upgrade, first half: starts a new tether with `-u` sharing this process's
    /// directory, pid file and upgrade socket, on `new_config` (`None`: the same
    /// section), and waits (bounded, 15 s) until it listens on the upgrade socket.
    /// The old process still serves; send it `signal("QUIT")` to hand the sockets over.
    pub fn spawn_upgrade(&mut self, new_config: Option<&Tether>) -> TetherProc {
        let sock = self.upgrade_sock();
        // A socket file left by an earlier upgrade would look like the new one.
        let _ = fs::remove_file(&sock);
        let mut builder = self.builder.clone();
        if let Some(config) = new_config {
            builder.section = config.yaml();
        }
        let mut new = builder.spawn_in(self.dir.clone(), &["-u"]);
        if self.listen.is_some() {
            new.listen = self.listen.clone();
        }
        let ready = wait_until(START_TIMEOUT, || sock.exists() || !new.is_running());
        if !ready || !new.is_running() {
            let why = new.describe();
            new.kill();
            panic!(
                "the upgrading tether never opened {}:\n{why}",
                sock.display()
            );
        }
        new
    }

    /// Hot upgrade, whole: [`TetherProc::spawn_upgrade`], SIGQUIT to this process, waits
    /// (bounded: grace period + shutdown timeout + 15 s) for it to exit, then checks the
    /// new process still runs and accepts on the listener. Returns the new process.
    /// Takes at least 5 s: Pingora's old process waits that long after handing the
    /// sockets over, before its grace period.
    pub fn upgrade(&mut self, new_config: Option<&Tether>) -> TetherProc {
        let mut new = self.spawn_upgrade(new_config);
        self.signal("QUIT");
        let limit =
            Duration::from_secs(self.builder.grace_period + self.builder.shutdown_timeout + 15);
        if self.wait_exit(limit).is_none() {
            panic!(
                "old tether (pid {}) still running {limit:?} after SIGQUIT\n{}\n--- new ---\n{}",
                self.pid(),
                self.describe(),
                new.describe()
            );
        }
        let targets = vec![new.addr()];
        new.wait_accepting(&targets, START_TIMEOUT);
        new
    }

    /// Pid, exit status and logs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "tether pid {} (exit: {:?}), config {}:\n{}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.child.id(),
            self.exit,
            self.config_path.display(),
            read_lossy(&self.config_path),
            self.stderr(),
            self.stdout()
        )
    }

    fn wait_accepting(&mut self, targets: &[SocketAddr], timeout: Duration) {
        let mut exited = None;
        let ok = wait_until(timeout, || {
            if let Some(status) = self.try_exit() {
                exited = Some(status);
                return true;
            }
            targets.iter().all(|addr| accepts(*addr))
        });
        if let Some(status) = exited {
            panic!(
                "tether exited ({status}) before accepting on {targets:?}\n{}",
                self.describe()
            );
        }
        if !ok {
            let why = self.describe();
            self.kill();
            panic!("tether not accepting on {targets:?} within {timeout:?}\n{why}");
        }
    }
}

impl Drop for TetherProc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for TetherProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TetherProc")
            .field("pid", &self.child.id())
            .field("listen", &self.listen)
            .field("config", &self.config_path)
            .finish()
    }
}

/// `tether.listeners[0].address` of an unindented tether section, if it parses.
pub fn first_listener(section: &str) -> Option<String> {
    let value: serde_yaml::Value = serde_yaml::from_str(section).ok()?;
    value
        .get("listeners")?
        .get(0)?
        .get("address")?
        .as_str()
        .map(str::to_string)
}

/// `tether.admin.address` of an unindented tether section, if present.
pub fn admin_address(section: &str) -> Option<String> {
    let value: serde_yaml::Value = serde_yaml::from_str(section).ok()?;
    value
        .get("admin")?
        .get("address")?
        .as_str()
        .map(str::to_string)
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot poll pid {}: {e}", child.id()));
        status.is_some()
    });
    status
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn create(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
