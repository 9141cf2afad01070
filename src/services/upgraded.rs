//! Closes the open upgraded connections (WebSockets) of endpoints that may
//! take no more traffic, as a Pingora background service: every 100 ms it
//! asks [`crate::state::upgraded`] which endpoints with open upgraded
//! connections must close now (after `tether.upgraded_connections.close_grace`)
//! and signals theirs. Only endpoints with open upgraded connections are
//! looked at; plain requests are never seen here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::live::Live;
use crate::state::upgraded::{endpoint_now, must_close, Verdicts};

const EVERY: Duration = Duration::from_millis(100);

pub struct UpgradedCloser {
    live: Arc<Live>,
}

impl UpgradedCloser {
    pub fn new(live: Arc<Live>) -> Self {
        UpgradedCloser { live }
    }
}

#[async_trait]
impl BackgroundService for UpgradedCloser {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut verdicts = Verdicts::default();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            let registry = self.live.upgraded();
            let open = registry.keys();
            verdicts.retain(&open);
            if open.is_empty() {
                continue;
            }
            let state = self.live.load();
            let now_ms = state.clock.now_ms();
            let grace_ms = u64::try_from(state.upgraded_connections.close_grace.as_millis())
                .unwrap_or(u64::MAX);
            for names in open.iter().map(|n| &**n) {
                let why = must_close(endpoint_now(&state, names, now_ms), now_ms);
                if let Some(why) = verdicts.due(names, why, now_ms, grace_ms) {
                    let closed = registry.close(names);
                    if closed > 0 {
                        let (lb, pool, endpoint) = names;
                        log::info!("load balancer {lb} pool {pool} endpoint {endpoint}: {why}, closing its {closed} open upgraded connection(s)", why = why.as_str());
                    }
                }
            }
        }
    }
}
