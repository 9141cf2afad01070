//! A second stop signal stops at once. Pingora answers the first `SIGTERM`
//! by serving in-flight requests for `grace_period_seconds` (then
//! `graceful_shutdown_timeout_seconds`), and swallows every later one: a
//! person who pressed Ctrl-C twice, or an init system that sent `SIGTERM`
//! again, would wait the whole grace period. This service counts `SIGINT`s
//! and `SIGTERM`s and exits the process on the second one, as NGINX's
//! `quit` then `stop` and most servers' double Ctrl-C do.

use async_trait::async_trait;
use log::{error, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// What a stop signal means: the first one is Pingora's, the second exits.
/// Returns the exit code on the second (128 + the signal, as a shell reports
/// a process a signal stopped).
pub fn on_stop_signal(seen_before: u32, signal_number: i32) -> Option<i32> {
    (seen_before >= 1).then_some(128 + signal_number)
}

/// The background service listening for the second stop signal.
pub struct SecondSignal;

#[async_trait]
impl BackgroundService for SecondSignal {
    /// Runs until the process exits: Pingora's shutdown broadcast does not
    /// end it, since the second signal matters most during the grace period.
    async fn start(&self, _shutdown: ShutdownWatch) {
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
        let mut seen = 0;
        loop {
            let (name, number) = tokio::select! {
                got = interrupts.recv() => match got { Some(()) => ("SIGINT", 2), None => return },
                got = terminates.recv() => match got { Some(()) => ("SIGTERM", 15), None => return },
            };
            if let Some(code) = on_stop_signal(seen, number) {
                warn!("{name} again: stopping now, without waiting for in-flight requests");
                std::process::exit(code);
            }
            seen += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_stop_signal_exits() {
        assert_eq!(
            on_stop_signal(0, 15),
            None,
            "the first is Pingora's graceful stop"
        );
        assert_eq!(on_stop_signal(1, 15), Some(143));
        assert_eq!(on_stop_signal(1, 2), Some(130));
    }
}
