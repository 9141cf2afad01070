//! Hot upgrade (SPEC 6) through the real binary, as an operator runs it: `tether -d -c
//! <file>` (a daemon writing its pid file), the file edited in place, then
//! `scripts/upgrade.sh -c <file>` — the command `systemctl reload tether` runs. Under
//! continuous load on kept-alive and fresh connections no request may fail; a file that
//! does not validate leaves the running process alone; `__cflb` sessions keep their
//! endpoint across an upgrade (that one through the harness's `-u` + SIGQUIT, without `-d`).
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use support::cflb::keys_file;
use support::tether::{pingora_keys, TETHER_BIN};
use support::*;
use tempfile::TempDir;

/// The script under test.
const UPGRADE_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/upgrade.sh");
/// Longest a run of the script may take here (its own bounds add up to less).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a daemon may take to write its pid file and accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A tether run as a daemon on one config file, as under systemd. Not our child: it is
/// found through its pid file and `/proc`. Drop SIGKILLs every tether process still
/// running on this deployment's config file.
struct Deployment {
    dir: TempDir,
    conf: PathBuf,
    /// The Pingora keys (pid file, upgrade socket, timers, error log) heading the file.
    pingora: String,
    listen: String,
    runs: usize,
}

/// What a run of `scripts/upgrade.sh` gave.
struct ScriptRun {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl ScriptRun {
    fn output(&self) -> String {
        format!(
            "exit {} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Deployment {
    /// A deployment listening on `listen`, with Pingora's `threads`, `grace_period_seconds`
    /// and `graceful_shutdown_timeout_seconds`; its log goes to `error.log` in its directory.
    fn new(listen: &str, threads: usize, grace: u64, shutdown_timeout: u64) -> Deployment {
        let dir = TempDir::new().expect("create a temporary directory");
        let pingora = format!(
            "{}error_log: {:?}\n",
            pingora_keys(dir.path(), threads, grace, shutdown_timeout),
            dir.path().join("error.log").display().to_string()
        );
        let conf = dir.path().join("tether.yaml");
        Deployment {
            dir,
            conf,
            pingora,
            listen: listen.to_string(),
            runs: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the config file: the Pingora keys and `tether:` holding `config`.
    fn write(&self, config: &Tether) {
        let text = format!("{}\ntether:\n{}", self.pingora, reindent(&config.yaml(), 2));
        fs::write(&self.conf, text).expect("write the config file");
    }

    /// The pid in the pid file, if any.
    fn pid(&self) -> Option<u32> {
        fs::read_to_string(self.path("tether.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", connect_addr(&self.listen), path)
    }

    /// `tether -d -c <file>`; waits (bounded) for the daemon's pid and its listener.
    fn start(&mut self) -> u32 {
        let mut launcher = Command::new(TETHER_BIN)
            .arg("-d")
            .arg("-c")
            .arg(&self.conf)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(self.log_file("start.out"))
            .stderr(self.log_file("start.err"))
            .spawn()
            .expect("run tether -d");
        let mut status = None;
        wait_until(START_TIMEOUT, || {
            status = launcher.try_wait().expect("poll the launcher");
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "tether -d: {status:?}\n{}",
            self.logs()
        );
        let started = wait_until(START_TIMEOUT, || {
            self.pid().is_some_and(alive) && accepts(connect_addr(&self.listen))
        });
        assert!(started, "the daemon never served\n{}", self.logs());
        self.pid().unwrap()
    }

    /// Runs `scripts/upgrade.sh -c <file> --bin <the test binary>` to completion (bounded).
    fn upgrade(&mut self) -> ScriptRun {
        self.upgrade_with(TETHER_BIN, &[])
    }

    /// As [`Deployment::upgrade`], with another `--bin` and more arguments.
    fn upgrade_with(&mut self, bin: &str, args: &[&str]) -> ScriptRun {
        self.runs += 1;
        let (out, err) = (
            format!("upgrade.{}.out", self.runs),
            format!("upgrade.{}.err", self.runs),
        );
        let started = Instant::now();
        // Files, not pipes: the new daemon inherits the script's stdout and stderr.
        let mut script = Command::new("bash")
            .arg(UPGRADE_SH)
            .arg("-c")
            .arg(&self.conf)
            .arg("--bin")
            .arg(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(self.log_file(&out))
            .stderr(self.log_file(&err))
            .spawn()
            .expect("run scripts/upgrade.sh");
        let mut status = None;
        wait_until(SCRIPT_TIMEOUT, || {
            status = script.try_wait().expect("poll the script");
            status.is_some()
        });
        let Some(status) = status else {
            let _ = script.kill();
            let _ = script.wait();
            panic!(
                "scripts/upgrade.sh still running after {SCRIPT_TIMEOUT:?}; killed\n{}",
                self.logs()
            );
        };
        ScriptRun {
            code: status.code().unwrap_or(-1),
            stdout: read(&self.path(&out)),
            stderr: read(&self.path(&err)),
            elapsed: started.elapsed(),
        }
    }

    /// Every live tether process running on this deployment's config file.
    fn processes(&self) -> Vec<u32> {
        let conf = self.conf.display().to_string();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.first().is_some_and(|a| a == TETHER_BIN) && args.contains(&conf) && alive(pid)
            })
            .collect()
    }

    /// The daemon's log, the launchers' and the scripts' output: for failure messages.
    fn logs(&self) -> String {
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".log") || n.ends_with(".out") || n.ends_with(".err"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut text = format!("config {}:\n{}", self.conf.display(), read(&self.conf));
        for name in names {
            text.push_str(&format!("--- {name} ---\n{}", read(&self.path(&name))));
        }
        text
    }

    fn log_file(&self, name: &str) -> fs::File {
        fs::File::create(self.path(name)).expect("create a log file")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for pid in self.processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether `pid` is a live process (a zombie, exited but not yet reaped, is not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>\n", path.display()))
}

/// `balancer` as `"*"` over pool `p` (`p`), listening on `listen`.
fn served(listen: &str, balancer: LoadBalancer, p: Pool) -> Tether {
    tether()
        .listener_at(listen)
        .load_balancer("*", balancer)
        .pool("p", p)
}

/// What the load threads saw.
#[derive(Default, Debug)]
struct Tally {
    kept_alive: u64,
    fresh: u64,
    failed: u64,
    /// The first failures, with the time since the load started.
    failures: Vec<String>,
    /// Answers per endpoint (the body names it).
    by_endpoint: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.kept_alive += other.kept_alive;
        self.fresh += other.fresh;
        self.failed += other.failed;
        for f in other.failures {
            if self.failures.len() < 20 {
                self.failures.push(f);
            }
        }
        for (name, n) in other.by_endpoint {
            *self.by_endpoint.entry(name).or_default() += n;
        }
    }

    fn total(&self) -> u64 {
        self.kept_alive + self.fresh + self.failed
    }
}

/// Client threads sending `GET /` as fast as they can until stopped: half reuse one
/// kept-alive connection each, half open a fresh connection per request
/// (`Connection: close`, no pooling). Every answer other than a complete `200` counts as
/// a failure: status, connect error, reset, truncated body, timeout.
struct Load {
    stop: Arc<AtomicBool>,
    /// Requests answered `200` so far, over all threads.
    ok: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Tally>>,
    started: Instant,
}

impl Load {
    fn start(url: &str, pairs: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = (0..pairs * 2)
            .map(|i| {
                let (url, stop, ok) = (url.to_string(), stop.clone(), ok.clone());
                std::thread::spawn(move || load_thread(&url, i % 2 == 1, &stop, &ok, started))
            })
            .collect();
        Load {
            stop,
            ok,
            threads,
            started,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for t in self.threads {
            tally.add(t.join().expect("a load thread panicked"));
        }
        tally
    }
}

fn load_thread(
    url: &str,
    fresh: bool,
    stop: &AtomicBool,
    ok: &AtomicU64,
    started: Instant,
) -> Tally {
    let client = if fresh {
        Client::builder()
            .no_proxy()
            .timeout(CLIENT_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("build a client")
    } else {
        client()
    };
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let mut request = client.get(url).header("host", "x");
        if fresh {
            request = request.header("connection", "close");
        }
        let outcome = request.send().and_then(|r| {
            let status = r.status().as_u16();
            r.text().map(|body| (status, body))
        });
        let failure = match outcome {
            Ok((200, body)) => {
                *tally.by_endpoint.entry(body).or_default() += 1;
                if fresh {
                    tally.fresh += 1;
                } else {
                    tally.kept_alive += 1;
                }
                ok.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok((status, body)) => format!("status {status}: {body}"),
            Err(e) => format!("{e:?}"),
        };
        tally.failed += 1;
        if tally.failures.len() < 20 {
            let kind = if fresh { "fresh" } else { "kept-alive" };
            tally.failures.push(format!(
                "{:.3}s {kind}: {failure}",
                started.elapsed().as_secs_f64()
            ));
        }
    }
    tally
}

#[test]
fn upgrade_under_load_drops_nothing() {
    let (a, b, c) = (
        Upstream::healthy("a"),
        Upstream::healthy("b"),
        Upstream::healthy("c"),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let mut dep = Deployment::new(&listen, 2, 2, 2);
    dep.write(&served(&listen, lb(["p"]), pool([&a, &b])));
    let old = dep.start();

    let load = Load::start(&dep.url("/"), 3);
    assert!(
        wait_until(Duration::from_secs(10), || load.ok() >= 100),
        "the load never got going\n{}",
        dep.logs()
    );

    // The new configuration: a third endpoint, and b's weight halved.
    dep.write(&served(
        &listen,
        lb(["p"]),
        pool([endpoint(&a), endpoint(&b).weight(0.5), endpoint(&c)]),
    ));
    let before = load.ok();
    let run = dep.upgrade();
    let during = load.ok() - before;
    assert_eq!(run.code, 0, "{}\n{}", run.output(), dep.logs());
    let new = dep.pid().expect("a pid file after the upgrade");
    assert_ne!(new, old, "{}", run.output());
    assert!(
        !alive(old),
        "the old process has exited when the script returns"
    );
    assert!(alive(new));

    // The new process alone, for a second more.
    let after_from = load.ok();
    let until = Instant::now() + Duration::from_secs(1);
    wait_until(Duration::from_secs(2), || Instant::now() >= until);
    let after = load.ok() - after_from;
    let load_time = load.started.elapsed();
    let tally = load.finish();

    println!(
        "upgrade under load: {} requests in {:.1}s ({} kept-alive, {} fresh connections), \
         {} failed; {} answered while scripts/upgrade.sh ran ({:.1}s), {} after; per endpoint {:?}",
        tally.total(),
        load_time.as_secs_f64(),
        tally.kept_alive,
        tally.fresh,
        tally.failed,
        during,
        run.elapsed.as_secs_f64(),
        after,
        tally.by_endpoint
    );
    assert_eq!(
        tally.failed,
        0,
        "requests failed during the upgrade: {:#?}\n{}\n{}",
        tally.failures,
        run.output(),
        dep.logs()
    );
    assert!(
        tally.total() > 200,
        "too little load to mean anything: {tally:?}"
    );
    assert!(tally.kept_alive > 0 && tally.fresh > 0, "{tally:?}");
    assert!(during > 100, "the load ran through the upgrade: {during}");
    assert!(after > 0, "the new process served: {after}");
    // The new configuration is in effect: only it knows endpoint c.
    assert!(
        c.requests() > 0 && tally.by_endpoint.get("c").is_some_and(|&n| n > 0),
        "the new endpoint c received no traffic: {tally:?}"
    );
    assert!(run.stdout.contains("upgrade done"), "{}", run.output());
    assert_eq!(dep.processes(), vec![new], "exactly one tether remains");
}

#[test]
fn invalid_config_leaves_the_old_process_serving() {
    let a = Upstream::healthy("a");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut dep = Deployment::new(&listen, 2, 1, 1);
    let good = served(&listen, lb(["p"]), pool([&a]));
    dep.write(&good);
    let old = dep.start();
    let client = client();
    assert_eq!(get(&client, &dep.url("/"), "x").0, 200);

    // A pool that does not exist, and a weight out of range.
    let bad = served(&listen, lb(["p", "nope"]), pool([endpoint(&a).weight(3.0)]));
    dep.write(&bad);
    let run = dep.upgrade();
    assert_ne!(run.code, 0, "{}", run.output());
    assert!(
        run.stderr.contains("weight: must be between 0 and 1")
            && run.stderr.contains("no pool named \"nope\"")
            && run.stderr.contains("nothing was changed"),
        "the script shows tether's errors and says nothing changed:\n{}",
        run.output()
    );
    assert!(!run.stdout.contains("SIGQUIT"), "{}", run.output());

    // The old process serves on, alone, with the same pid; no upgrade socket was opened.
    assert_eq!(dep.pid(), Some(old));
    assert_eq!(dep.processes(), vec![old], "{}", dep.logs());
    assert!(!dep.path("upgrade.sock").exists());
    for _ in 0..20 {
        let (status, _, body) = get(&client, &dep.url("/"), "x");
        assert_eq!((status, body.as_str()), (200, "a"));
    }
    assert_eq!(get(&super_fresh(), &dep.url("/"), "x").0, 200);

    // Fixed, the same upgrade goes through.
    dep.write(&good);
    let run = dep.upgrade();
    assert_eq!(run.code, 0, "{}\n{}", run.output(), dep.logs());
    let new = dep.pid().unwrap();
    assert_ne!(new, old);
    assert_eq!(dep.processes(), vec![new]);
    assert_eq!(get(&super_fresh(), &dep.url("/"), "x").0, 200);
}

#[test]
fn failed_starts_leave_the_old_process_serving() {
    let a = Upstream::healthy("a");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut dep = Deployment::new(&listen, 2, 1, 1);
    dep.write(&served(&listen, lb(["p"]), pool([&a])));
    let old = dep.start();

    // A binary that validates the file but dies when started with -u: the script stops
    // before SIGQUIT and says the old process still serves.
    let fake = dep.path("fake-tether");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in -t) exec \"{TETHER_BIN}\" \"$@\" ;; esac\n\
             echo \"fake tether: cannot start\" >&2\nexit 3\n"
        ),
    )
    .unwrap();
    let made_executable = Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made_executable);
    let run = dep.upgrade_with(&fake.display().to_string(), &[]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr.contains("fake tether: cannot start")
            && run.stderr.contains("exited (status 3)")
            && run
                .stderr
                .contains(&format!("the old tether (pid {old}) is still serving")),
        "{}",
        run.output()
    );
    assert!(!run.stdout.contains("SIGQUIT"), "{}", run.output());

    // A pid file naming no live process: nothing is started.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let stale = dep.path("stale.pid");
    fs::write(&stale, format!("{gone_pid}\n")).unwrap();
    let run = dep.upgrade_with(TETHER_BIN, &["--pid-file", &stale.display().to_string()]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains(&format!("no tether runs as pid {gone_pid}")),
        "{}",
        run.output()
    );

    // Through all of it the old process served, alone.
    assert_eq!(dep.pid(), Some(old));
    assert_eq!(dep.processes(), vec![old], "{}", dep.logs());
    assert_eq!(get(&super_fresh(), &dep.url("/"), "x").0, 200);
}

/// A client that never reuses a connection.
fn super_fresh() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .expect("build a client")
}

#[test]
fn cookie_sessions_keep_their_endpoint_across_an_upgrade() {
    const KEY: &[u8] = b"upgrade-test-key-0123456789abcdef";
    let ups = ["a", "b", "c"].map(Upstream::healthy);
    let d = Upstream::healthy("d");
    let keys_dir = TempDir::new().unwrap();
    let keys = keys_file(keys_dir.path(), "cookie.keys", &[KEY]);
    let listen = format!("127.0.0.1:{}", free_port());
    let sticky = |p: Pool| {
        served(&listen, lb(["p"]).affinity(Affinity::Cookie), p)
            .decision_header()
            .cookie_keys_file(&keys)
    };
    let v1 = sticky(pool(&ups));
    let mut old = v1.builder().grace(1, 1).start();

    // Sessions on every endpoint, before the upgrade.
    let client = client();
    let mut sessions = Vec::new();
    for _ in 0..200 {
        let (status, headers, body) = get(&client, &old.url("/"), "x");
        assert_eq!(status, 200);
        let decision = header(&headers, "x-tether-decision").unwrap();
        assert_eq!(decision, format!("*/p/{body}/new"));
        let cookie = set_cookie_value(&headers, "__cflb").expect("a new session's cookie");
        sessions.push((cookie, body));
        let covered: std::collections::BTreeSet<&str> =
            sessions.iter().map(|(_, e)| e.as_str()).collect();
        if covered.len() == 3 && sessions.len() >= 12 {
            break;
        }
    }
    let covered: std::collections::BTreeSet<&str> =
        sessions.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(covered.len(), 3, "sessions on a, b and c: {sessions:?}");

    // The upgrade adds endpoint d and moves weight: new sessions may go elsewhere,
    // existing ones stay where they are.
    let v2 = sticky(pool(ups.iter().map(|u| endpoint(u).weight(0.3))).and(&d));
    let new = old.upgrade(Some(&v2));
    assert!(!old.is_running());
    for (cookie, endpoint) in &sessions {
        let (status, headers, body) = get_h(
            &client,
            &new.url("/"),
            &[("host", "x"), ("cookie", &format!("__cflb={cookie}"))],
        );
        assert_eq!(status, 200);
        assert_eq!(&body, endpoint, "the session keeps its endpoint");
        assert_eq!(
            header(&headers, "x-tether-decision").unwrap(),
            format!("*/p/{endpoint}/hit")
        );
        assert!(
            set_cookie_line(&headers, "__cflb").is_none(),
            "no new cookie"
        );
    }
    // The new configuration is in effect: new sessions reach d.
    let reached_d = (0..200).any(|_| get(&client, &new.url("/"), "x").2 == "d");
    assert!(
        reached_d,
        "endpoint d, added by the upgrade, gets new sessions"
    );
}
