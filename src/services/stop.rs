//! A second stop signal stops at once. Pingora answers the first `SIGTERM`
//! by serving in-flight requests for `grace_period_seconds` (then
//! `graceful_shutdown_timeout_seconds`), and swallows every later one: a
//! person who pressed Ctrl-C twice, or an init system that sent `SIGTERM`
//! again, would wait the whole grace period. This service exits the process
//! on a `SIGINT` or `SIGTERM` that arrives while a graceful stop is under way
//! (a stop signal seen before, or Pingora's shutdown already broadcast — the
//! first signal may come before this service listens, and a hot upgrade's
//! `SIGQUIT` drain is a graceful stop too), as NGINX's `quit` then `stop`
//! and most servers' double Ctrl-C do.
//!
//! [`StopSignals`] is the server's watch of the first signal, Pingora's own
//! but for `SIGINT`: Pingora answers it with a fast shutdown that broadcasts
//! nothing, so its accept loops (`pingora-core` 0.9.1
//! `src/services/listening.rs:208-270`, left only on that broadcast) meet a
//! runtime being shut down and spin on `Accept() failed` while the other
//! runtimes wait, and the process did not always end (about 2 stops in 10
//! here). A fast stop cuts in-flight requests either way; Tether ends the
//! process at once instead, after writing the waiting access log lines.

use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// What a stop signal means: the first one is Pingora's, one during a
/// graceful stop (`stopping`: a stop signal was seen before, or Pingora's
/// shutdown was broadcast before this signal) exits. Returns the exit code
/// then (128 + the signal, as a shell reports a process a signal stopped).
pub fn on_stop_signal(stopping: bool, signal_number: i32) -> Option<i32> {
    stopping.then_some(128 + signal_number)
}

/// The background service listening for the second stop signal.
pub struct SecondSignal;

#[async_trait]
impl BackgroundService for SecondSignal {
    /// Runs until the process exits: Pingora's shutdown broadcast does not
    /// end it, since the second signal matters most during the grace period.
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (mut interrupts, mut terminates) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                error!("cannot listen for stop signals, a second one will not cut the grace period short: {e}");
                return;
            }
        };
        // Already stopping when this service starts listening: the first
        // signal came before it did (a SIGTERM right after start).
        let mut stopping = *shutdown.borrow();
        let mut watching = true;
        let mut said = false;
        loop {
            if stopping && !said {
                said = true;
                info!("graceful stop under way: a second SIGINT or SIGTERM stops at once");
            }
            // A signal first: the signal that starts a graceful stop also
            // wakes the shutdown watch, and must count as the first.
            let (name, number) = tokio::select! {
                biased;
                got = interrupts.recv() => match got { Some(()) => ("SIGINT", 2), None => return },
                got = terminates.recv() => match got { Some(()) => ("SIGTERM", 15), None => return },
                // Read only here, after the signals: a signal that started
                // the stop is ready before Pingora could broadcast it.
                changed = shutdown.changed(), if watching => {
                    match changed {
                        Ok(()) => stopping |= *shutdown.borrow(),
                        Err(_) => watching = false,
                    }
                    continue;
                }
            };
            if let Some(code) = on_stop_signal(stopping, number) {
                warn!("{name} again: stopping now, without waiting for in-flight requests");
                exit_now(code);
            }
            stopping = true;
        }
    }
}

/// Ends the process with `code` after writing what the logs hold.
fn exit_now(code: i32) -> ! {
    crate::access_log::flush();
    log::logger().flush();
    std::process::exit(code)
}

/// The watch of the first stop signal handed to Pingora's `Server::run`:
/// `SIGQUIT` is a hot upgrade's drain and `SIGTERM` a graceful stop, as in
/// Pingora; `SIGINT` ends the process at once (exit code 0, as Pingora's
/// fast shutdown did).
pub struct StopSignals;

#[async_trait]
impl ShutdownSignalWatch for StopSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (mut quits, mut terminates, mut interrupts) = match (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(q), Ok(t), Ok(i)) => (q, t, i),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                error!("cannot listen for stop signals: {e}");
                exit_now(1);
            }
        };
        tokio::select! {
            _ = quits.recv() => ShutdownSignal::GracefulUpgrade,
            _ = terminates.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupts.recv() => {
                info!("SIGINT received: stopping now");
                exit_now(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_signal_during_a_graceful_stop_exits() {
        assert_eq!(
            on_stop_signal(false, 15),
            None,
            "the first is Pingora's graceful stop"
        );
        assert_eq!(on_stop_signal(true, 15), Some(143));
        assert_eq!(on_stop_signal(true, 2), Some(130));
    }
}
