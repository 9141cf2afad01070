//! WebSocket load for `scripts/bench.sh` (`BENCH_WS=1`): memory per open
//! WebSocket and CPU per relayed message of a proxy, and the upstream echo
//! server it relays to.
//!
//!     ws_load echo LISTEN...
//!     ws_load load --url ws://127.0.0.1:PORT/ws --conns N --messages M [--size BYTES]
//!                  [--clk-tck HZ] --pids PID[,PID...]
//!
//! `echo` answers every WebSocket on each LISTEN address with each message it
//! received. `load` opens N WebSockets through the proxy at `--url` and holds
//! them: every one has echoed one message (so what the proxy allocates on a
//! connection's first relayed bytes is counted). It reads the proxy's memory
//! (the sum over `--pids` of `VmRSS` in `/proc/PID/status` and of `Pss` in
//! `/proc/PID/smaps_rollup`, so a master and its worker count once each)
//! before the first connection (after one warm-up WebSocket opened and
//! closed) and 1 s after the last is open, then has every connection echo M
//! more messages of `--size` bytes (one at a time per connection, all
//! connections at once) and reads the proxy's CPU (utime + stime in
//! `/proc/PID/stat`) over that phase. A relayed message is one crossing of
//! the proxy: each echo is two. It prints one line of `key=value` fields.

// A load tool measures real time on purpose.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{accept_async, client_async};

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

fn usage() -> ! {
    eprintln!(
        "usage: ws_load echo LISTEN...\n       ws_load load --url ws://HOST:PORT/PATH --conns N --messages M [--size BYTES] [--clk-tck HZ] --pids PID[,PID...]"
    );
    std::process::exit(2)
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("ws_load: {what}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    match args.split_first() {
        Some((mode, rest)) if mode == "echo" && !rest.is_empty() => rt.block_on(echo(rest)),
        Some((mode, rest)) if mode == "load" => {
            let opts = LoadOpts::parse(rest);
            rt.block_on(load(opts))
        }
        _ => usage(),
    }
}

// ---------------------------------------------------------------- echo

async fn echo(addrs: &[String]) {
    let mut listeners = Vec::new();
    for a in addrs {
        let l = TcpListener::bind(a)
            .await
            .unwrap_or_else(|e| fail(format!("bind {a}: {e}")));
        listeners.push(l);
    }
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo_one(stream));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Echoes one connection's messages. A plain HTTP request (not an upgrade)
/// gets `200 ok` so that readiness checks see an answer.
async fn echo_one(stream: TcpStream) {
    let mut peek = [0u8; 2048];
    let n = stream.peek(&mut peek).await.unwrap_or(0);
    let head = String::from_utf8_lossy(&peek[..n]).to_ascii_lowercase();
    if !head.contains("upgrade: websocket") {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        // The request is read first, so the close that follows is not a reset.
        let _ = stream.read_exact(&mut peek[..n]).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            .await;
        return;
    }
    let Ok(mut ws) = accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- load

struct LoadOpts {
    url: String,
    conns: usize,
    messages: usize,
    size: usize,
    clk_tck: f64,
    pids: Vec<u32>,
}

impl LoadOpts {
    fn parse(args: &[String]) -> LoadOpts {
        let mut o = LoadOpts {
            url: String::new(),
            conns: 2000,
            messages: 50,
            size: 64,
            clk_tck: 100.0,
            pids: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().unwrap_or_else(|| usage());
            let num = || value.parse::<usize>().unwrap_or_else(|_| usage());
            match flag.as_str() {
                "--url" => o.url = value.clone(),
                "--conns" => o.conns = num(),
                "--messages" => o.messages = num(),
                "--size" => o.size = num(),
                "--clk-tck" => o.clk_tck = num() as f64,
                "--pids" => {
                    o.pids = value
                        .split([',', ' '])
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse().unwrap_or_else(|_| usage()))
                        .collect()
                }
                _ => usage(),
            }
        }
        if o.url.is_empty() || o.pids.is_empty() || o.conns == 0 {
            usage()
        }
        o
    }
}

/// `key:` in a `/proc` file of `Key:   123 kB` lines, summed over `pids`.
fn proc_kib(pids: &[u32], file: &str, key: &str) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/{file}")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// utime + stime in clock ticks, summed over `pids`.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|stat| {
            // After the command (which may hold spaces): state is field 3, utime 14, stime 15.
            let after = stat.rsplit_once(") ")?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

struct Memory {
    rss: u64,
    pss: u64,
}

fn memory(pids: &[u32]) -> Memory {
    Memory {
        rss: proc_kib(pids, "status", "VmRSS:"),
        pss: proc_kib(pids, "smaps_rollup", "Pss:"),
    }
}

async fn connect(url: &str) -> Result<Ws, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = client_async(url, stream)
        .await
        .map_err(|e| format!("handshake through {authority}: {e}"))?;
    Ok(ws)
}

/// Sends `payload` and waits for its echo (bounded: 30 s).
async fn round_trip(ws: &mut Ws, payload: &str) -> Result<(), String> {
    ws.send(Message::text(payload.to_string()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == payload => return Ok(()),
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    return Err("a different message came back".to_string())
                }
                Some(Ok(Message::Close(_))) | None => return Err("closed".to_string()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .map_err(|_| "no echo within 30 s".to_string())?
}

/// Phases the connections go through together.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Open,
    Relay,
    Close,
}

/// Waits (bounded: 120 s) until `count` reaches `n`, or a connection failed.
async fn wait_count(count: &AtomicUsize, failed: &AtomicUsize, n: usize, what: &str) {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < n {
        if failed.load(Ordering::Relaxed) > 0 {
            fail(format!(
                "{} connection(s) failed while {what}",
                failed.load(Ordering::Relaxed)
            ));
        }
        if start.elapsed() > Duration::from_secs(120) {
            fail(format!(
                "only {} of {n} connections done {what} after 120 s",
                count.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn load(o: LoadOpts) {
    let payload: String = "x".repeat(o.size.max(1));
    // Warm-up: one WebSocket opened, echoed and closed, so the proxy's first-use allocations
    // (thread-local caches, the upstream pool's structures) are in the base.
    {
        let mut ws = connect(&o.url).await.unwrap_or_else(|e| fail(e));
        round_trip(&mut ws, &payload)
            .await
            .unwrap_or_else(|e| fail(e));
        let _ = ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = memory(&o.pids);

    let opened = Arc::new(AtomicUsize::new(0));
    let relayed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Open);
    // At most 64 handshakes at a time: the listen backlog is not what is measured.
    let handshakes = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        let (url, payload) = (o.url.clone(), payload.clone());
        let (opened, relayed, failed) = (opened.clone(), relayed.clone(), failed.clone());
        let (handshakes, mut phase) = (handshakes.clone(), phase_rx.clone());
        let messages = o.messages;
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut ws = {
                    let _permit = handshakes.acquire().await.map_err(|e| e.to_string())?;
                    let mut ws = connect(&url).await?;
                    round_trip(&mut ws, &payload).await?;
                    ws
                };
                opened.fetch_add(1, Ordering::Relaxed);
                phase
                    .wait_for(|p| *p != Phase::Open)
                    .await
                    .map_err(|e| e.to_string())?;
                for _ in 0..messages {
                    round_trip(&mut ws, &payload).await?;
                }
                relayed.fetch_add(1, Ordering::Relaxed);
                phase
                    .wait_for(|p| *p == Phase::Close)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = ws.close(None).await;
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = result {
                if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("ws_load: first failure: {e}");
                }
            }
        }));
    }
    wait_count(&opened, &failed, o.conns, "opening").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = memory(&o.pids);

    let t0 = cpu_ticks(&o.pids);
    let w0 = Instant::now();
    let _ = phase_tx.send(Phase::Relay);
    wait_count(&relayed, &failed, o.conns, "relaying").await;
    let wall = w0.elapsed();
    let t1 = cpu_ticks(&o.pids);
    let after = memory(&o.pids);
    let _ = phase_tx.send(Phase::Close);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }

    let n = o.conns as f64;
    let crossings = 2.0 * n * o.messages as f64;
    let cpu_s = t1.saturating_sub(t0) as f64 / o.clk_tck;
    let per = |a: u64, b: u64| (a as f64 - b as f64) / n;
    println!(
        "conns={} messages={} size={} base_rss_kib={} open_rss_kib={} relayed_rss_kib={} \
         rss_kib_per_conn={:.1} pss_kib_per_conn={:.1} rss_kib_per_conn_after_relay={:.1} \
         cpu_s={:.2} wall_s={:.2} cpu_us_per_msg={:.2} msgs_per_s={:.0}",
        o.conns,
        o.messages,
        o.size,
        base.rss,
        open.rss,
        after.rss,
        per(open.rss, base.rss),
        per(open.pss, base.pss),
        per(after.rss, base.rss),
        cpu_s,
        wall.as_secs_f64(),
        if crossings > 0.0 {
            cpu_s * 1e6 / crossings
        } else {
            0.0
        },
        if wall.as_secs_f64() > 0.0 {
            crossings / wall.as_secs_f64()
        } else {
            0.0
        },
    );
}
