//! Sweeps idle `header` / `source_ip` sessions out of the session table, as a
//! Pingora background service: once a second, expired entries are removed
//! from the least-recently-used end (bounded work per tick). Lookups already
//! treat an idle entry as expired; the sweep only gives its memory back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::SessionAffinity;
use crate::state::live::Live;
use crate::state::State;

const EVERY: Duration = Duration::from_secs(1);
/// Entries removed per tick at most.
const BUDGET: usize = 100_000;

pub struct Sweeper {
    live: Arc<Live>,
}

impl Sweeper {
    pub fn new(live: Arc<Live>) -> Self {
        Sweeper { live }
    }
}

/// The longest idle TTL of the load balancers that use the table: an entry
/// idle for longer is expired for every one of them.
fn longest_ttl_ms(state: &State) -> Option<u64> {
    state
        .load_balancers()
        .all()
        .filter(|lb| {
            matches!(
                lb.conf.session_affinity,
                SessionAffinity::Header | SessionAffinity::SourceIp
            )
        })
        .map(|lb| lb.ttl_ms)
        .max()
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {
                    let state = self.live.load();
                    if let Some(ttl) = longest_ttl_ms(&state) {
                        let now = state.clock.now_ms();
                        state.sessions.sweep(ttl, now, BUDGET);
                    }
                }
            }
        }
    }
}
