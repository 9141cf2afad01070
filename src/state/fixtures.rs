//! Test fixtures shared by the unit tests of the selector and the sticky
//! selector: small configurations built in code, health set by hand.

use std::collections::BTreeMap;

use crate::config::*;
use crate::state::State;

pub fn endpoint(name: &str, port: u16) -> Endpoint {
    Endpoint {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        socket_addr: format!("127.0.0.1:{port}").parse().unwrap(),
        weight: 1.0,
        enabled: true,
        host: None,
        server_name: None,
    }
}

pub fn pool(name: &str, n: u16, steering: OriginSteering) -> Pool {
    Pool {
        name: name.into(),
        enabled: true,
        minimum_origins: 1,
        monitor: None,
        origin_steering: steering,
        load_shedding: Default::default(),
        outlier_detection: None,
        slow_start: std::time::Duration::ZERO,
        read_timeout: None,
        tls: None,
        protocol: Default::default(),
        endpoints: (0..n)
            .map(|i| endpoint(&format!("{name}-{i}"), 9000 + i))
            .collect(),
    }
}

pub fn config(pools: Vec<Pool>, default_pools: &[&str], fallback: Option<&str>) -> Config {
    let lb = LoadBalancer {
        name: "*".into(),
        enabled: true,
        default_pools: default_pools.iter().map(|s| s.to_string()).collect(),
        fallback_pool: fallback.map(str::to_string),
        steering_policy: SteeringPolicy::Off,
        random_steering: RandomSteering::default(),
        session_affinity: SessionAffinity::None,
        session_affinity_ttl: std::time::Duration::ZERO,
        session_affinity_attributes: SessionAffinityAttributes::default(),
        adaptive_routing: AdaptiveRouting::default(),
        always_use_https: false,
        rules: vec![],
    };
    Config {
        listeners: vec![],
        admin: None,
        cookie_keys_file: None,
        state_file: None,
        max_sessions: 10,
        decision_header: false,
        upstream_timeouts: UpstreamTimeouts::default(),
        client_limits: ClientLimits::default(),
        access_log: Default::default(),
        dns_refresh: std::time::Duration::from_secs(60),
        upgraded_connections: Default::default(),
        load_balancers: BTreeMap::from([("*".to_string(), lb)]),
        pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect(),
        monitors: BTreeMap::new(),
        cluster: None,
    }
}

pub fn set_health(state: &State, pool: &str, healthy: &[bool]) {
    let p = &state.pools[state.pool_index(pool).unwrap()];
    for (e, h) in p.endpoints.iter().zip(healthy) {
        e.set_healthy(*h);
    }
}
