//! The access log, written off the request path. A request's line is
//! formatted where it finished ([`format`], pure) straight into a buffer of
//! its worker thread's own; one thread of its own (`tether-access-log`,
//! started on the first line, so after Pingora's daemonising fork) wakes
//! every [`FLUSH_EVERY`], swaps each worker's buffer for an empty one and
//! writes what it took to stderr, beside env_logger's lines. A line costs no
//! allocation and no system call, and the writer is never woken per line
//! (waking a sleeping writer for each line cost more than the line itself,
//! measured in docs/benchmarks.md). A worker's buffer is bounded: when the
//! writer falls behind by [`QUEUE_BYTES`], lines are dropped, never waited
//! for, and counted (`tether_access_log_dropped_total`).
//!
//! `RUST_LOG` still decides whether there is an access log at all (target
//! `access`, level info); `tether.access_log.format` decides its shape, and a
//! reload changes it for the next line.

pub mod format;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::config::AccessLogFormat;
pub use format::Record;

/// Bytes of lines a worker thread may have waiting for the writer (about
/// 16,000 lines); past it, its lines are dropped.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How often the writer wakes to take the waiting lines: a line reaches
/// stderr within this long.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// `true`: JSON lines (`tether.access_log.format: json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// Lines dropped because their thread's buffer was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines handed to the writer.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// One worker thread's lines waiting for the writer.
type Waiting = Arc<Mutex<String>>;

/// Every worker thread's buffer, for the writer to take from (`None`: the
/// writer thread could not be started).
static WRITER: OnceLock<Option<Mutex<Vec<Waiting>>>> = OnceLock::new();

thread_local! {
    /// This thread's buffer, registered with the writer on its first line.
    static MINE: std::cell::OnceCell<Waiting> = const { std::cell::OnceCell::new() };
}

/// Sets the format of the lines from now on (at start and on reload).
pub fn set_format(format: AccessLogFormat) {
    JSON.store(format == AccessLogFormat::Json, Relaxed);
}

pub fn format() -> AccessLogFormat {
    if JSON.load(Relaxed) {
        AccessLogFormat::Json
    } else {
        AccessLogFormat::Text
    }
}

/// Whether the access log is on (`RUST_LOG`: target `access` at info).
pub fn enabled() -> bool {
    log::log_enabled!(target: "access", log::Level::Info)
}

/// Lines dropped because the writer fell behind by [`QUEUE_BYTES`] on their thread.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// Lines queued for the writer so far.
pub fn queued() -> u64 {
    WRITTEN.load(Relaxed)
}

/// Logs one request: formats its line into this thread's buffer; never
/// waits (the writer holds a buffer's lock only to swap it).
pub fn log(record: &Record<'_>) {
    if !enabled() {
        return;
    }
    let Some(threads) = WRITER.get_or_init(start).as_ref() else {
        DROPPED.fetch_add(1, Relaxed);
        return;
    };
    MINE.with(|mine| {
        let waiting = mine.get_or_init(|| {
            let waiting = Waiting::default();
            lock(threads).push(Arc::clone(&waiting));
            waiting
        });
        let mut buffer = lock(waiting);
        if buffer.len() >= QUEUE_BYTES {
            DROPPED.fetch_add(1, Relaxed);
            return;
        }
        format::write_line(record, format(), &mut buffer);
        WRITTEN.fetch_add(1, Relaxed);
    });
}

/// A poisoned lock still holds whole lines (a line is appended by one call).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the writer thread (`None` if the thread cannot be started: every
/// line is then dropped and counted).
fn start() -> Option<Mutex<Vec<Waiting>>> {
    match std::thread::Builder::new()
        .name("tether-access-log".into())
        .spawn(write_loop)
    {
        Ok(_) => Some(Mutex::new(Vec::new())),
        Err(e) => {
            log::error!("access log: cannot start its writer thread ({e}); lines are dropped");
            None
        }
    }
}

/// Every [`FLUSH_EVERY`]: writes what is waiting ([`write_waiting`]), then
/// sleeps again.
fn write_loop() {
    let mut taken = String::new();
    let mut buffers: Vec<Waiting> = Vec::new();
    loop {
        std::thread::sleep(FLUSH_EVERY);
        write_waiting(&mut taken, &mut buffers);
    }
}

/// Writes every line waiting now, before a process exits at once (a fast
/// stop): the writer thread would have written them within [`FLUSH_EVERY`].
pub fn flush() {
    write_waiting(&mut String::new(), &mut Vec::new());
}

/// Swaps each worker's buffer for an empty one (`taken`) and writes what it
/// took under stderr's lock (whole lines: never interleaved with
/// env_logger's). `buffers` is scratch space for the list of buffers.
fn write_waiting(taken: &mut String, buffers: &mut Vec<Waiting>) {
    let Some(Some(threads)) = WRITER.get() else {
        return;
    };
    buffers.clone_from(&lock(threads));
    for waiting in buffers.iter() {
        std::mem::swap(&mut *lock(waiting), taken);
        if taken.is_empty() {
            continue;
        }
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        // Nowhere to report a failing stderr; the lines are lost.
        let _ = out.write_all(taken.as_bytes()).and_then(|()| out.flush());
        taken.clear();
        if taken.capacity() > QUEUE_BYTES / 4 {
            // After a burst: not kept for ever.
            *taken = String::new();
        }
    }
}
