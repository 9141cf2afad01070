//! [`Monitors`], the Pingora background service that runs every endpoint's
//! health registry on its monitor's `interval`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::connectors::http::Connector;
use pingora::lb::discovery::Static;
use pingora::lb::{Backends, HealthRegistry};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::task::JoinSet;

use super::check::{identity, MonitorCheck, Probe, Target};
use super::probe::NetProbe;
use super::LOG_TARGET;
use crate::config::Monitor;
use crate::state::live::Live;
use crate::state::origin_tls::ProbeTls;
use crate::state::State;

/// Every endpoint of every pool that names a monitor, with that monitor.
pub fn targets(state: &State) -> Vec<(Arc<Monitor>, Target)> {
    let mut out = Vec::new();
    for (pool_index, pool) in state.pools.iter().enumerate() {
        let Some(monitor) = pool
            .conf
            .monitor
            .as_ref()
            .and_then(|m| state.monitors.get(m))
        else {
            continue;
        };
        let monitor = Arc::new(monitor.clone());
        for (endpoint_index, endpoint) in pool.endpoints.iter().enumerate() {
            let mut addr = endpoint.conf.socket_addr;
            if monitor.port != 0 {
                addr.set_port(monitor.port);
            }
            let Some(at) = state.pick(pool_index, endpoint_index) else {
                continue;
            };
            let target = Target {
                at,
                id: endpoint.id,
                pool: pool.name().to_string(),
                endpoint: endpoint.name().to_string(),
                addr,
                host: endpoint
                    .conf
                    .host
                    .clone()
                    .unwrap_or_else(|| endpoint.conf.address.clone()),
                tls: (pool.conf.tls.as_ref()).map(|t| ProbeTls::new(t, &endpoint.conf, addr)),
            };
            out.push((Arc::clone(&monitor), target));
        }
    }
    out
}

/// One endpoint under one monitor: a view publishing the endpoint's backend
/// into a registry of its own, whose health check is the monitor.
struct Watch {
    view: Arc<Backends>,
    interval: Duration,
}

/// The health monitors of every pool, as one Pingora background service.
pub struct Monitors {
    watches: Vec<Watch>,
}

impl Monitors {
    pub fn new(state: Arc<State>) -> Self {
        let connector = Arc::new(Connector::new(None));
        Self::with_probe(state, |monitor| {
            NetProbe::new(Arc::clone(monitor), Arc::clone(&connector))
        })
    }

    /// As [`Monitors::new`], with `probe_for(monitor)` making each endpoint's
    /// probe.
    pub fn with_probe<P: Probe + 'static>(
        state: Arc<State>,
        probe_for: impl Fn(&Arc<Monitor>) -> P,
    ) -> Self {
        let watches = targets(&state)
            .into_iter()
            .map(|(monitor, target)| {
                let registry = Arc::new(HealthRegistry::with_equivalence(identity));
                registry.set_health_check(Box::new(MonitorCheck::new(
                    Arc::clone(&monitor),
                    Arc::clone(&state),
                    probe_for(&monitor),
                )));
                let view = Backends::new_with_health_registry(
                    Static::new(BTreeSet::from([target.backend()])),
                    registry,
                );
                Watch {
                    view: Arc::new(view),
                    interval: monitor.interval,
                }
            })
            .collect();
        Monitors { watches }
    }

    /// Endpoints under a monitor.
    pub fn endpoints(&self) -> usize {
        self.watches.len()
    }
}

/// Publishes the endpoint into its registry, then runs one Pingora check pass
/// at once and one every `interval` (a pass that overruns delays the next).
async fn watch(view: Arc<Backends>, interval: Duration) {
    if let Err(e) = view.update(|_| {}).await {
        warn!(target: LOG_TARGET, "monitor: cannot register the endpoint: {e}");
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        view.run_health_check(false).await;
    }
}

impl Monitors {
    /// Starts every endpoint's checks.
    fn spawn(&self) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for w in &self.watches {
            tasks.spawn(watch(Arc::clone(&w.view), w.interval));
        }
        tasks
    }
}

#[async_trait]
impl BackgroundService for Monitors {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.watches.is_empty() {
            return;
        }
        let mut tasks = self.spawn();
        info!(target: LOG_TARGET, "monitors started for {} endpoint(s)", self.watches.len());
        let _ = shutdown.changed().await;
        tasks.abort_all();
    }
}

/// The monitors of the live state, as the Pingora background service:
/// rebuilt for the new state each time a reload replaces it (what was
/// learnt about the endpoints that stay is carried over by the reload).
pub struct LiveMonitors {
    live: Arc<Live>,
}

impl LiveMonitors {
    pub fn new(live: Arc<Live>) -> Self {
        LiveMonitors { live }
    }
}

#[async_trait]
impl BackgroundService for LiveMonitors {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut generation = self.live.generation();
        loop {
            let monitors = Monitors::new(self.live.load());
            let mut tasks = monitors.spawn();
            if monitors.endpoints() > 0 {
                info!(target: LOG_TARGET, "monitors started for {} endpoint(s)", monitors.endpoints());
            }
            let reloaded = tokio::select! {
                _ = shutdown.changed() => false,
                changed = generation.changed() => changed.is_ok(),
            };
            tasks.abort_all();
            if !reloaded {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use parking_lot::Mutex;
    use tokio::time::{sleep, sleep_until, Instant};

    use super::*;
    use crate::affinity::cookie::CookieKeys;
    use crate::config::{OriginSteering, Pool};
    use crate::health::check::tests::monitor;
    use crate::state::fixtures;

    /// What a scripted probe answers.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Pass,
        Fail,
        /// Passes after this long.
        Slow(Duration),
    }
    use Answer::*;

    /// Scripted answers per `"pool/endpoint"` (then `Pass`), and every call.
    #[derive(Clone, Default)]
    struct Script(Arc<Mutex<ScriptInner>>);

    #[derive(Default)]
    struct ScriptInner {
        answers: HashMap<String, VecDeque<Answer>>,
        calls: Vec<(String, Instant)>,
    }

    impl Script {
        fn answer(&self, key: &str, answers: &[Answer]) {
            self.0
                .lock()
                .answers
                .insert(key.to_string(), answers.iter().copied().collect());
        }
        /// When `key` was probed, as offsets from `start` in ms.
        fn calls(&self, key: &str, start: Instant) -> Vec<u128> {
            self.0
                .lock()
                .calls
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, at)| (*at - start).as_millis())
                .collect()
        }
    }

    #[async_trait]
    impl Probe for Script {
        async fn probe(&self, t: &Target) -> Result<Duration, String> {
            let key = format!("{}/{}", t.pool, t.endpoint);
            let answer = {
                let mut inner = self.0.lock();
                inner.calls.push((key.clone(), crate::clock::tokio_now()));
                inner
                    .answers
                    .get_mut(&key)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(Pass)
            };
            match answer {
                Pass => Ok(Duration::from_millis(3)),
                Fail => Err(format!("{key} scripted failure")),
                Slow(d) => {
                    sleep(d).await;
                    Ok(d)
                }
            }
        }
    }

    /// Pools `(name, endpoints)` all under monitor `m`, endpoints on
    /// 127.0.0.1:9000, 9001, ...
    fn setup(pools: &[(&str, u16)], m: Monitor) -> (Arc<State>, crate::config::Config) {
        let pools: Vec<Pool> = pools
            .iter()
            .map(|(name, n)| Pool {
                monitor: Some(m.name.clone()),
                ..fixtures::pool(name, *n, OriginSteering::Random)
            })
            .collect();
        let first = pools[0].name.clone();
        let mut config = fixtures::config(pools, &[&first], None);
        config.monitors.insert(m.name.clone(), m);
        let state = Arc::new(State::new(&config, CookieKeys::random()));
        (state, config)
    }

    fn healthy(state: &State, pool: &str, endpoint: &str) -> bool {
        state
            .endpoint(state.find_endpoint(pool, endpoint).unwrap())
            .healthy()
    }

    /// Starts the service; dropping the sender stops it.
    fn run(monitors: Monitors) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move { monitors.start(rx).await });
        tx
    }

    #[tokio::test(start_paused = true)]
    async fn probed_at_once_then_every_interval() {
        let (state, _) = setup(&[("p", 2)], monitor(1000, 2, 1, 1));
        let script = Script::default();
        let monitors = Monitors::with_probe(Arc::clone(&state), |_| script.clone());
        assert_eq!(monitors.endpoints(), 2);
        let start = crate::clock::tokio_now();
        let _stop = run(monitors);
        sleep(Duration::from_millis(1)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0]);
        assert_eq!(script.calls("p/p-1", start), vec![0]);
        sleep_until(start + Duration::from_millis(3500)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0, 1000, 2000, 3000]);
        assert_eq!(script.calls("p/p-1", start), vec![0, 1000, 2000, 3000]);
        let p0 = state.endpoint(state.find_endpoint("p", "p-0").unwrap());
        assert_eq!(p0.rtt(), Some(Duration::from_millis(3)));
        assert_eq!(p0.last_check().and_then(|c| c.failure), None);
    }

    /// The sequence of the former `Streak` unit test, through Pingora's
    /// registry: up after 2 passes in a row, down after 3 failures in a row.
    #[tokio::test(start_paused = true)]
    async fn flips_after_consecutive_down_and_up() {
        let (state, _) = setup(&[("p", 1)], monitor(100, 0, 2, 3));
        let script = Script::default();
        let answers = [Fail, Fail, Fail, Pass, Fail, Pass, Pass, Pass];
        let health = [true, true, false, false, false, false, true, true];
        script.answer("p/p-0", &answers);
        let start = crate::clock::tokio_now();
        let _stop = run(Monitors::with_probe(Arc::clone(&state), |_| script.clone()));
        for (k, expected) in health.iter().enumerate() {
            sleep_until(start + Duration::from_millis(100 * k as u64 + 1)).await;
            assert_eq!(healthy(&state, "p", "p-0"), *expected, "after probe {k}");
        }
        assert_eq!(script.calls("p/p-0", start).len(), answers.len());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_immediate_and_one_pass_among_them_is_a_pass() {
        let (state, _) = setup(&[("p", 1)], monitor(100, 2, 1, 1));
        let script = Script::default();
        script.answer("p/p-0", &[Fail, Fail, Pass, Fail, Fail, Fail]);
        let start = crate::clock::tokio_now();
        let _stop = run(Monitors::with_probe(Arc::clone(&state), |_| script.clone()));
        sleep(Duration::from_millis(1)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0, 0, 0]);
        assert!(healthy(&state, "p", "p-0"));
        sleep_until(start + Duration::from_millis(101)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0, 0, 0, 100, 100, 100]);
        assert!(!healthy(&state, "p", "p-0"));
        let endpoint = state.endpoint(state.find_endpoint("p", "p-0").unwrap());
        assert_eq!(
            endpoint.last_check().and_then(|c| c.failure).as_deref(),
            Some("p/p-0 scripted failure")
        );
    }

    /// Both pools have an endpoint at 127.0.0.1:9000: one Pingora
    /// `(addr, weight)`, two Tether endpoints, probed and tracked apart.
    #[tokio::test(start_paused = true)]
    async fn one_address_in_two_pools_is_two_endpoints() {
        let (state, _) = setup(&[("a", 1), ("b", 1)], monitor(100, 0, 1, 1));
        let script = Script::default();
        script.answer("a/a-0", &[Fail, Fail]);
        let start = crate::clock::tokio_now();
        let _stop = run(Monitors::with_probe(Arc::clone(&state), |_| script.clone()));
        sleep(Duration::from_millis(1)).await;
        assert!(!healthy(&state, "a", "a-0"));
        assert!(healthy(&state, "b", "b-0"));
        sleep_until(start + Duration::from_millis(201)).await;
        assert!(healthy(&state, "a", "a-0"));
        assert_eq!(script.calls("a/a-0", start), vec![0, 100, 200]);
        assert_eq!(script.calls("b/b-0", start), vec![0, 100, 200]);
    }

    /// A probe slower than the interval delays its own endpoint's next probe
    /// (no burst of missed ticks), never another endpoint's.
    #[tokio::test(start_paused = true)]
    async fn a_slow_endpoint_delays_only_itself() {
        let (state, _) = setup(&[("p", 2)], monitor(100, 0, 1, 1));
        let script = Script::default();
        script.answer("p/p-0", &[Slow(Duration::from_millis(250))]);
        let start = crate::clock::tokio_now();
        let _stop = run(Monitors::with_probe(Arc::clone(&state), |_| script.clone()));
        sleep_until(start + Duration::from_millis(401)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0, 250, 350]);
        assert_eq!(script.calls("p/p-1", start), vec![0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_probing() {
        let (state, _) = setup(&[("p", 1)], monitor(100, 0, 1, 1));
        let script = Script::default();
        let start = crate::clock::tokio_now();
        let stop = run(Monitors::with_probe(Arc::clone(&state), |_| script.clone()));
        sleep(Duration::from_millis(150)).await;
        stop.send(true).unwrap();
        sleep(Duration::from_millis(1000)).await;
        assert_eq!(script.calls("p/p-0", start), vec![0, 100]);
    }

    #[test]
    fn targets_apply_the_monitor_port_and_the_host_header() {
        let (_, mut config) = setup(&[("a", 2), ("b", 1)], monitor(100, 0, 1, 1));
        config.pools.get_mut("a").unwrap().endpoints[1].host = Some("app.internal".into());
        config.pools.get_mut("b").unwrap().monitor = None;
        config.monitors.get_mut("m").unwrap().port = 8443;
        let state = State::new(&config, CookieKeys::random());
        let got: Vec<(String, String, String, u64)> = targets(&state)
            .into_iter()
            .map(|(_, t)| (t.endpoint, t.addr.to_string(), t.host, t.id))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "a-0".into(),
                    "127.0.0.1:8443".into(),
                    "127.0.0.1:9000".into(),
                    crate::state::endpoint_id("a", "a-0")
                ),
                (
                    "a-1".into(),
                    "127.0.0.1:8443".into(),
                    "app.internal".into(),
                    crate::state::endpoint_id("a", "a-1")
                ),
            ]
        );
    }
}
