//! Real-time apps through Tether, with the real frameworks (issue 19): python-socketio
//! server processes (tests/realtime/app.py, aiohttp, per-session state in each
//! process's memory) behind the real `tether` binary, driven by python-socketio's own
//! client (tests/realtime/load.py: many concurrent sessions, transports polling then
//! websocket) and by a real headless Chromium running the socket.io browser client.
//!
//! The tools come from PyPI and npm, pinned, installed by scripts/realtime_tools.sh
//! into target/ (once; cheap when done). A session that reaches the wrong process
//! fails as in a real app (python-socketio answers 400 to an unknown sid): without
//! affinity most sessions fail, and a test says so.
//!
//! scripts/realtime.sh runs the same client at a larger size (≥ 1,000 sessions).

// Waits are bounded by real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

// This file uses no `Upstream` (the apps are real socket.io processes).
#[allow(unused_imports)]
mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use support::browser::{chromium, HEADLESS};
use support::cflb::keys_file;
use support::tools::{prepared_python, repo, target_dir, wait_listening};
use support::*;
use tempfile::TempDir;

// ---------------------------------------------------------------- the tools

struct Tools {
    python: PathBuf,
    /// socket.io-client's dist/ (the browser client the page loads).
    client_dist: PathBuf,
}

/// Runs scripts/realtime_tools.sh once per test binary (at most 10 minutes: the first
/// run installs from PyPI and npm; later runs find the stamp and return at once).
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let python = prepared_python(
            "realtime_tools.sh",
            "the real-time tests need python3 with venv, npm and the registries",
        );
        let client_dist = target_dir().join("realtime-npm/node_modules/socket.io-client/dist");
        assert!(
            client_dist.join("socket.io.min.js").is_file(),
            "{client_dist:?}"
        );
        Tools {
            python,
            client_dist,
        }
    })
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/realtime").join(name)
}

// ---------------------------------------------------------------- the app

/// One process of tests/realtime/app.py on a free loopback port; killed on Drop.
struct App {
    name: String,
    port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl App {
    fn start(name: &str) -> App {
        let tools = tools();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(&tools.python)
            .arg(script("app.py"))
            .args(["--name", name, "--port", &port.to_string(), "--static"])
            .arg(&tools.client_dist)
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start tests/realtime/app.py");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(&mut child, addr, &format!("app {name}"), log.path());
        App {
            name: name.to_string(),
            port,
            child,
            log,
        }
    }

    fn three() -> [App; 3] {
        ["a", "b", "c"].map(App::start)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    fn stats(&self) -> Value {
        let (status, _, body) = get(&client(), &self.url("/stats"), "app");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// SIGKILL: the process is gone at once, as in a crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- app {} log ---\n{}",
                self.name,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
        }
    }
}

/// Tether in front of `apps` as docs/realtime.md advises: one load balancer `*`,
/// pool `p`, this affinity, drain 60 s, `zero_downtime_failover: sticky` (a session
/// whose endpoint refuses is served by another and re-pinned there: its state is
/// there from the reconnect on).
fn in_front_of(apps: &[App], affinity: Affinity) -> Tether {
    tether()
        .listener(free_port())
        .admin(free_port())
        .load_balancer(
            "*",
            lb(["p"])
                .affinity(affinity)
                .drain(60)
                .zero_downtime_failover(Failover::Sticky),
        )
        .pool(
            "p",
            pool(apps.iter().map(|app| Endpoint::at(&app.name, &app.addr()))),
        )
}

// ---------------------------------------------------------------- the client

/// One run of tests/realtime/load.py: its stdout lines (JSON) come through a channel.
struct LoadRun {
    child: Child,
    lines: Receiver<String>,
    release_file: PathBuf,
    stderr: tempfile::NamedTempFile,
    _dir: TempDir,
}

/// Starts `sessions` socket.io sessions through `proxy` (load.py's other options in
/// `args`); with `hold`, they stay open until [`LoadRun::release`].
fn start_load(proxy: &TetherProc, sessions: usize, hold: bool, args: &[&str]) -> LoadRun {
    let dir = TempDir::new().unwrap();
    let release_file = dir.path().join("release");
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(&tools().python);
    command
        .arg(script("load.py"))
        .args(["--url", &proxy.url(""), "--sessions", &sessions.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap());
    if hold {
        command.arg("--hold-until").arg(&release_file);
    }
    let mut child = command.spawn().expect("start tests/realtime/load.py");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    LoadRun {
        child,
        lines,
        release_file,
        stderr,
        _dir: dir,
    }
}

/// A whole run without hold: the final report.
fn load(proxy: &TetherProc, sessions: usize, args: &[&str]) -> Value {
    start_load(proxy, sessions, false, args).finish(Duration::from_secs(120))
}

impl LoadRun {
    /// Reads lines until one satisfies `pred` (→ it) or `timeout` passes (panics).
    fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON from load.py ({e}): {line}"));
                    if pred(&value) {
                        return value;
                    }
                    last = value;
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "load.py: not there within {timeout:?}; last line {}\n{}",
                        summary(&last),
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "load.py ended early; last line {}\n{}",
                        summary(&last),
                        self.stderr()
                    )
                }
            }
        }
    }

    fn connected(&mut self) -> Value {
        self.wait_for(Duration::from_secs(60), |v| v["phase"] == "connected")
    }

    fn release(&self) {
        std::fs::write(&self.release_file, "go").unwrap();
    }

    fn finish(mut self, timeout: Duration) -> Value {
        self.release();
        let done = self.wait_for(timeout, |v| v["phase"] == "done");
        let status = wait_exit(&mut self.child, Duration::from_secs(10));
        assert_eq!(status.map(|s| s.success()), Some(true), "{}", self.stderr());
        eprintln!("load.py: {}", summary(&done));
        done
    }

    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- load.py stderr (last lines) ---\n{}", tail.join("\n"))
    }
}

impl Drop for LoadRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A report without its per-session list, for messages.
fn summary(report: &Value) -> String {
    let mut short = report.clone();
    if let Some(map) = short.as_object_mut() {
        map.remove("sessions");
    }
    short.to_string()
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {}", summary(report)))
}

fn on(report: &Value, key: &str, server: &str) -> u64 {
    report[key][server].as_u64().unwrap_or(0)
}

/// Every session failed for none of its own, in a whole report.
fn assert_none_failed(report: &Value, proxy: &TetherProc) {
    assert_eq!(
        count(report, "failed"),
        0,
        "failed sessions: {}\n--- tether errors ---\n{}",
        summary(report),
        proxy
            .log_lines("ERROR")
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `tether_upstream_retries_total` summed over its labels, when Tether has it.
fn retries(proxy: &TetherProc) -> Option<f64> {
    let (status, _, text) = get(&client(), &proxy.admin_url("/metrics"), "admin");
    if status != 200 {
        return None;
    }
    let lines: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("tether_upstream_retries_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.iter().sum())
}

// ---------------------------------------------------------------- the tests

/// load.py's options for the scenario tests (drain, kill, upgrade): a first connect
/// that fails is retried with a fresh client and counted (`connect_retries`), so a
/// scenario is judged on what happens to sessions that were up; the first test
/// judges first connects, with no retry.
const SCENARIO: &[&str] = &["--rounds", "3", "--retry-connect"];

#[test]
fn socketio_sessions_keep_their_process_with_cookie_affinity() {
    let apps = App::three();
    let proxy = in_front_of(&apps, Affinity::Cookie).start();

    // Polling, then the upgrade to websocket: every session works and ends on websocket.
    let report = load(&proxy, 200, &["--rounds", "5"]);
    assert_none_failed(&report, &proxy);
    assert_eq!(count(&report, "websocket"), 200, "{}", summary(&report));
    for app in &apps {
        assert!(
            on(&report, "first_server", &app.name) > 0,
            "no session on {}: {}",
            app.name,
            summary(&report)
        );
    }
    eprintln!("tether_upstream_retries_total: {:?}", retries(&proxy));

    // Long polling alone (no websocket): every poll must reach the session's process.
    let report = load(&proxy, 100, &["--rounds", "5", "--transports", "polling"]);
    assert_none_failed(&report, &proxy);
}

#[test]
fn without_affinity_socketio_sessions_fail() {
    let apps = App::three();
    let proxy = in_front_of(&apps, Affinity::None).start();
    let report = load(&proxy, 60, &["--rounds", "2", "--connect-timeout", "5"]);
    // A session lives only if its handshake and its upgrade (or next polls) happen to
    // reach the same process: about 2 in 3 fail; at least 1 in 3 always does.
    let failed = count(&report, "failed");
    assert!(
        failed * 3 >= 60,
        "sessions fail when their polls reach other processes: {}",
        summary(&report)
    );
}

#[test]
fn a_drained_endpoint_keeps_its_sessions_and_gets_no_new_ones() {
    let apps = App::three();
    let proxy = in_front_of(&apps, Affinity::Cookie).start();
    let mut held = start_load(&proxy, 30, true, SCENARIO);
    let connected = held.connected();
    assert_eq!(connected["failed"], 0, "{connected}");
    let on_a = on(&connected, "by_server", "a");
    assert!(on_a > 0, "no session on a: {connected}");

    let (status, _, answer) = api::admin(
        &proxy,
        Method::PATCH,
        "/v1/pools/p/endpoints/a",
        r#"{"enabled": false}"#,
        None,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["result"]["draining"][0]["seconds_left"].as_u64() > Some(0),
        "{answer}"
    );

    // New sessions avoid a; they all work.
    let fresh = load(&proxy, 30, SCENARIO);
    assert_none_failed(&fresh, &proxy);
    assert_eq!(on(&fresh, "first_server", "a"), 0, "{}", summary(&fresh));

    // The sessions on a went on through the drain, never cut, nothing lost.
    let done = held.finish(Duration::from_secs(60));
    assert_none_failed(&done, &proxy);
    assert_eq!(count(&done, "reconnected"), 0, "{}", summary(&done));
    assert_eq!(on(&done, "final_server", "a"), on_a, "{}", summary(&done));
    assert_eq!(
        (count(&done, "lost"), count(&done, "unsent")),
        (0, 0),
        "{}",
        summary(&done)
    );
}

#[test]
fn sessions_of_a_killed_endpoint_reconnect_to_a_live_one() {
    let mut apps = App::three();
    let proxy = in_front_of(&apps, Affinity::Cookie).start();
    let mut held = start_load(&proxy, 30, true, SCENARIO);
    let connected = held.connected();
    assert_eq!(connected["failed"], 0, "{connected}");
    let on_b = on(&connected, "by_server", "b");
    assert!(on_b > 0, "no session on b: {connected}");

    apps[1].kill();
    // Bounded wait: b's sessions are cut, reconnect through Tether (their cookie names
    // b, which refuses) and are pinned to a live endpoint; everyone is connected again.
    let back = held.wait_for(Duration::from_secs(30), |v| {
        v["phase"] == "hold"
            && v["reconnected"].as_u64() >= Some(on_b)
            && v["connected"] == 30
            && on(v, "current_server", "b") == 0
    });
    eprintln!("after the kill: {back}");

    let done = held.finish(Duration::from_secs(60));
    assert_none_failed(&done, &proxy);
    assert_eq!(on(&done, "final_server", "b"), 0, "{}", summary(&done));
    assert!(count(&done, "reconnected") >= on_b, "{}", summary(&done));
    // Their new process knows them from the reconnect on: the final rounds' echo
    // counts (checked by load.py) held.
    assert_eq!(
        on(&done, "final_server", "a") + on(&done, "final_server", "c"),
        30
    );
}

#[test]
fn sessions_come_back_to_their_endpoint_after_a_hot_upgrade() {
    let apps = App::three();
    let keys_dir = TempDir::new().unwrap();
    let keys = keys_file(
        keys_dir.path(),
        "cookie.keys",
        &[b"realtime-upgrade-key-0123456789ab"],
    );
    let config = in_front_of(&apps, Affinity::Cookie).cookie_keys_file(&keys);
    let mut old = config.builder().grace(1, 1).start();
    let mut held = start_load(&old, 30, true, SCENARIO);
    let connected = held.connected();
    assert_eq!(connected["failed"], 0, "{connected}");

    let new = old.upgrade(Some(&config));
    // The old process closed its WebSockets when it ended; every session reconnects
    // through the new one (bounded wait).
    let back = held.wait_for(Duration::from_secs(30), |v| {
        v["phase"] == "hold" && v["reconnected"] == 30 && v["connected"] == 30
    });
    eprintln!("after the upgrade: {back}");

    let done = held.finish(Duration::from_secs(60));
    assert_none_failed(&done, &new);
    eprintln!(
        "hot upgrade: {} of {} sessions reconnected, {} back on the same endpoint (cookie), \
         {} messages lost in flight, {} not sent while reconnecting",
        count(&done, "reconnected"),
        count(&done, "total"),
        count(&done, "same_server_after_reconnect"),
        count(&done, "lost"),
        count(&done, "unsent")
    );
    assert_eq!(
        count(&done, "same_server_after_reconnect"),
        count(&done, "reconnected"),
        "the cookie brings every session back to its endpoint: {}",
        summary(&done)
    );
}

#[test]
fn server_sent_events_are_streamed_one_by_one() {
    let apps = App::three();
    let proxy = in_front_of(&apps, Affinity::Cookie).start();
    let streaming = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = streaming
        .get(proxy.url("/sse?n=5&stream=t1"))
        .send()
        .expect("GET /sse through tether");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-type").as_deref(),
        Some("text/event-stream")
    );
    // The app writes event i, then waits for its acknowledgement (sent straight to
    // the app) before writing the next: the stream ends with `end` only if each
    // event came through on its own, not buffered until the response ended.
    let mut reader = BufReader::new(response);
    let mut events = Vec::new();
    let mut event = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read the stream") == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        if !line.is_empty() {
            event.push(line);
            continue;
        }
        let text = event.join("\n");
        event.clear();
        if let Some(data) = text.strip_prefix("id: ") {
            let (i, rest) = data.split_once('\n').unwrap();
            let server = rest.trim_start_matches("data: ").split(' ').next().unwrap();
            let app = apps.iter().find(|a| a.name == server).unwrap();
            let (status, _, _) = get(
                &client(),
                &app.url(&format!("/sse-ack?stream=t1&i={i}")),
                "app",
            );
            assert_eq!(status, 200);
        }
        events.push(text);
    }
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[5], "event: end\ndata: done", "{events:?}");
}

#[test]
fn a_browser_keeps_its_socketio_session_across_a_reconnect() {
    let apps = App::three();
    let proxy = in_front_of(&apps, Affinity::Cookie).start();
    let profile = TempDir::new().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    // Real time, no --dump-dom: the page reports its result to its app (POST /report).
    let mut browser = Command::new(chromium())
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(proxy.url("/"))
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start chromium");
    let mut report = Value::Null;
    let reported = wait_until(Duration::from_secs(60), || {
        report = apps
            .iter()
            .find_map(|app| app.stats()["reports"].get(0).cloned())
            .unwrap_or(Value::Null);
        !report.is_null()
    });
    let _ = browser.kill();
    let _ = browser.wait();
    assert!(
        reported,
        "the page reported nothing within 60 s:\n{}",
        std::fs::read_to_string(log.path()).unwrap_or_default()
    );
    eprintln!("the page: {report}");
    assert!(report.get("data-error").is_none(), "{report}");
    let page_server = report["data-page-server"].as_str().unwrap();
    assert_eq!(report["data-server-1"], page_server, "{report}");
    assert_eq!(report["data-server-2"], page_server, "{report}");
    assert_eq!(report["data-transport-1"], "websocket", "{report}");
    assert_eq!(report["data-transport-2"], "websocket", "{report}");
    // The process remembered the user from its first connect (its own memory).
    assert_eq!(report["data-user-connects-2"], "2", "{report}");
}
