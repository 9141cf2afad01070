//! The proxy's Pingora app with its shutdown clean-up deferred by [`LINGER`].
//!
//! When its accept loop ends (after SIGQUIT: 5 s after the listening sockets were handed
//! to the new process; after SIGTERM: at once), Pingora's HTTP app drops every client
//! connection that is waiting for a request. That includes a connection accepted a moment
//! earlier whose request had not arrived yet, and a kept-alive connection whose client was
//! just sending its next request: under load, such requests failed during hot upgrades
//! (1-2 per upgrade, measured by `tests/upgrade.rs`). Deferring the clean-up by
//! [`LINGER`] lets them through: a connection accepted before the loop ended has its
//! request read and answered, and a busy kept-alive connection gets `Connection: close` on
//! its next response (Pingora sets it once shutdown has started) and ends cleanly. Only
//! connections idle for the whole [`LINGER`] are then dropped.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

/// How long client connections are still served after the accept loop ended. It runs
/// inside Pingora's `grace_period_seconds` (and `graceful_shutdown_timeout_seconds`).
pub const LINGER: Duration = Duration::from_secs(1);

/// Wraps a Pingora app (here the HTTP proxy) and defers its `cleanup` by [`LINGER`].
pub struct Lingering<A> {
    inner: Arc<A>,
}

impl<A> Lingering<A> {
    pub fn new(inner: A) -> Lingering<A> {
        Lingering {
            inner: Arc::new(inner),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Lingering<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(LINGER).await;
        self.inner.cleanup().await;
    }
}
