//! Names that move: endpoints whose `address` is `hostname:port` are
//! resolved again every `tether.dns_refresh` seconds, each through Pingora's
//! [`ServiceDiscovery`] trait (one discovery per endpoint: the set of
//! backends it returns is that endpoint's addresses). When the address in
//! use is no longer among them, the endpoint moves to the first of them
//! (in address order, so every replica picks alike) and the move is logged.
//! Requests and probes read the address through
//! [`crate::state::EndpointState::socket_addr`] (a lock-free load).
//!
//! Sessions follow the endpoint's name, not its address: a `__cflb` cookie
//! and a session-table entry carry the stable hash of the pool and endpoint
//! names, so a session stays with its endpoint across a move.
//!
//! A failed or empty resolution keeps the address in use (one warning per
//! failure streak). The decision is pure ([`next_address`]); the service only
//! connects it to the clock, the resolver and the state.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::live::Live;
use crate::state::State;

/// How long one resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The address an endpoint should use after a resolution: `None` to keep
/// `current` (still among the results, or nothing was resolved), else the
/// lowest resolved address.
pub fn next_address(current: SocketAddr, resolved: &BTreeSet<SocketAddr>) -> Option<SocketAddr> {
    if resolved.is_empty() || resolved.contains(&current) {
        return None;
    }
    resolved.iter().next().copied()
}

/// Whether a configured address is `hostname:port` (not `IP:port`).
pub fn is_host_name(address: &str) -> bool {
    address.parse::<SocketAddr>().is_err()
}

/// One `hostname:port`, resolved by the system's resolver.
pub struct HostName {
    pub address: String,
}

#[async_trait]
impl ServiceDiscovery for HostName {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let lookup = tokio::net::lookup_host(self.address.clone());
        let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => {
                return Error::e_explain(ErrorType::Custom("dns"), format!("{e}"));
            }
            Err(_) => {
                return Error::e_explain(ErrorType::Custom("dns"), "timed out after 5 s");
            }
        };
        let backends = addrs
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: 1,
                ext: http::Extensions::new(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

/// Makes the discovery of one host-name address (tests give a fake).
pub type Discover = dyn Fn(&str) -> Box<dyn ServiceDiscovery + Send + Sync> + Send + Sync;

/// The background service re-resolving every host-name endpoint.
pub struct DnsRefresher {
    live: Arc<Live>,
    discover: Box<Discover>,
}

impl DnsRefresher {
    pub fn new(live: Arc<Live>) -> Self {
        Self::with_discovery(live, |address| {
            Box::new(HostName {
                address: address.to_string(),
            })
        })
    }

    pub fn with_discovery(
        live: Arc<Live>,
        discover: impl Fn(&str) -> Box<dyn ServiceDiscovery + Send + Sync> + Send + Sync + 'static,
    ) -> Self {
        DnsRefresher {
            live,
            discover: Box::new(discover),
        }
    }

    /// One pass over the current state's host-name endpoints. `failing`
    /// holds the endpoints whose last resolution failed (one warning each).
    pub async fn refresh(&self, state: &State, failing: &mut BTreeSet<u64>) {
        let mut resolved_names = 0;
        for pool in &state.pools {
            for e in &pool.endpoints {
                if !is_host_name(&e.conf.address) {
                    continue;
                }
                let resolved = match (self.discover)(&e.conf.address).discover().await {
                    Ok((backends, _)) => {
                        failing.remove(&e.id);
                        backends
                            .iter()
                            .filter_map(|b| b.addr.as_inet().copied())
                            .collect::<BTreeSet<SocketAddr>>()
                    }
                    Err(err) => {
                        if failing.insert(e.id) {
                            warn!(
                                "pool {} endpoint {}: cannot resolve {} ({err}); keeping {}",
                                pool.name(),
                                e.name(),
                                e.conf.address,
                                e.socket_addr()
                            );
                        }
                        continue;
                    }
                };
                resolved_names += 1;
                let current = e.socket_addr();
                if let Some(next) = next_address(current, &resolved) {
                    e.set_socket_addr(next);
                    info!(
                        "pool {} endpoint {}: {} now resolves to {next} (was {current}); its sessions stay with it",
                        pool.name(),
                        e.name(),
                        e.conf.address
                    );
                }
            }
        }
        log::debug!("dns refresh: {resolved_names} host-name endpoint(s) resolved");
    }
}

#[async_trait]
impl BackgroundService for DnsRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut failing = BTreeSet::new();
        loop {
            let state = self.live.load();
            let every = state.dns_refresh;
            let any = state
                .pools
                .iter()
                .flat_map(|p| &p.endpoints)
                .any(|e| is_host_name(&e.conf.address));
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if any {
                // A reload may have replaced the state meanwhile: the current one.
                let state = self.live.load();
                self.refresh(&state, &mut failing).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::config::OriginSteering;
    use crate::state::fixtures::{config, pool};
    use parking_lot::Mutex;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_address_in_use_is_kept_while_resolved() {
        let set = |v: &[&str]| v.iter().map(|s| addr(s)).collect::<BTreeSet<_>>();
        let cur = addr("10.0.0.2:80");
        assert_eq!(
            next_address(cur, &set(&["10.0.0.1:80", "10.0.0.2:80"])),
            None
        );
        assert_eq!(next_address(cur, &set(&[])), None, "nothing resolved: keep");
        assert_eq!(
            next_address(cur, &set(&["10.0.0.9:80", "10.0.0.3:80"])),
            Some(addr("10.0.0.3:80"))
        );
        assert!(is_host_name("backend.internal:8080"));
        assert!(!is_host_name("127.0.0.1:8080"));
        assert!(!is_host_name("[::1]:8080"));
    }

    /// A resolver whose answer the test changes.
    struct Fake(Arc<Mutex<Option<Vec<SocketAddr>>>>);

    #[async_trait]
    impl ServiceDiscovery for Fake {
        async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
            match self.0.lock().clone() {
                None => Error::e_explain(ErrorType::Custom("dns"), "no answer"),
                Some(addrs) => Ok((
                    addrs
                        .into_iter()
                        .map(|a| Backend::new(&a.to_string()).unwrap())
                        .collect(),
                    HashMap::new(),
                )),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_name_moves_the_endpoint_on_the_interval_and_failures_keep_it() {
        let mut c = config(vec![pool("p", 2, OriginSteering::Random)], &["p"], None);
        c.dns_refresh = Duration::from_secs(30);
        let p = c.pools.get_mut("p").unwrap();
        p.endpoints[0].address = "app.internal:8080".into();
        p.endpoints[0].socket_addr = addr("10.0.0.1:8080");
        let live = Arc::new(Live::new(State::new(&c, CookieKeys::random())));
        let answer = Arc::new(Mutex::new(Some(vec![addr("10.0.0.1:8080")])));
        let asked = Arc::new(Mutex::new(Vec::<String>::new()));
        let (a, q) = (Arc::clone(&answer), Arc::clone(&asked));
        let refresher = Arc::new(DnsRefresher::with_discovery(
            Arc::clone(&live),
            move |name| {
                q.lock().push(name.to_string());
                Box::new(Fake(Arc::clone(&a)))
            },
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = {
            let r = Arc::clone(&refresher);
            tokio::spawn(async move { r.start(rx).await })
        };
        let state = live.load();
        let e0 = |s: &State| s.pools[0].endpoints[0].socket_addr();

        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(
            asked.lock().as_slice(),
            ["app.internal:8080"],
            "only the host name"
        );
        assert_eq!(e0(&state), addr("10.0.0.1:8080"));

        *answer.lock() = Some(vec![addr("10.0.0.7:8080"), addr("10.0.0.5:8080")]);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(e0(&state), addr("10.0.0.1:8080"), "not before the interval");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(e0(&state), addr("10.0.0.5:8080"), "moved to the lowest");

        *answer.lock() = None;
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(e0(&state), addr("10.0.0.5:8080"), "a failure keeps it");
        assert_eq!(asked.lock().len(), 3);
        // The other endpoint (an IP address) never moved; ids are by name.
        assert_eq!(
            state.pools[0].endpoints[1].socket_addr(),
            c.pools["p"].endpoints[1].socket_addr
        );
        assert_eq!(
            state.pools[0].endpoints[0].id,
            crate::state::endpoint_id("p", "p-0")
        );

        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
