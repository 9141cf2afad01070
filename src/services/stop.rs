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

use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
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
                std::process::exit(code);
            }
            stopping = true;
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
