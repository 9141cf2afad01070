//! Micro-benchmarks of the request path's decisions (issue "evidence"):
//! a cookie hit (decode + MAC + pin check), a new pick at 10, 100 and 1000
//! endpoints (random steering and the ip_cookie ring), and a header-session
//! hit (key hashing + table lookup). `cargo bench --bench affinity`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tether::affinity::cookie::{CookieKeys, Pin};
use tether::config::load_str;
use tether::route::sticky::Sticky;
use tether::state::{endpoint_id, LbState, State};

/// One load balancer `*` with `affinity` over one pool of `n` endpoints.
fn state(affinity: &str, attrs: &str, n: usize) -> (State, Arc<LbState>) {
    let endpoints: String = (0..n)
        .map(|i| {
            format!(
                "        - {{name: e{i}, address: \"127.0.0.1:{}\"}}\n",
                10_000 + i
            )
        })
        .collect();
    let yaml = format!(
        "version: 1\ntether:\n  listeners: [{{address: \"127.0.0.1:1\"}}]\n  load_balancers:\n    \"*\":\n      default_pools: [p]\n      session_affinity: {affinity}\n      session_affinity_attributes: {attrs}\n  pools:\n    p:\n      endpoints:\n{endpoints}"
    );
    let config = load_str(&yaml).expect("bench config").tether;
    let state = State::new(&config, CookieKeys::from_keys(vec![vec![7; 32]]));
    let lb = Arc::clone(state.load_balancers().get("x").unwrap());
    (state, lb)
}

fn dice() -> impl FnMut() -> f64 {
    let mut x = 0.123_f64;
    move || {
        x = (x + 0.618_034) % 1.0;
        x
    }
}

fn cookie_hit(c: &mut Criterion) {
    let (state, lb) = state("cookie", "{}", 10);
    let now = state.clock.now();
    let cookie = state.keys.encode(&Pin {
        lb_id: lb.id,
        endpoint_id: endpoint_id("p", "e3"),
        expires: now.unix_secs + 3600,
        nonce: Some(42),
    });
    let ip: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
    let mut rand = dice();
    c.bench_function("cookie hit (decode, MAC, pin check)", |b| {
        b.iter(|| {
            let routed = Sticky(&state).route(
                &lb,
                std::iter::once(black_box(cookie.as_str())),
                None,
                ip,
                now,
                &mut rand,
            );
            black_box(routed)
        })
    });
}

fn new_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("new pick");
    for n in [10, 100, 1000] {
        for affinity in ["cookie", "ip_cookie"] {
            let (state, lb) = state(affinity, "{}", n);
            let now = state.clock.now();
            let mut rand = dice();
            let mut last = 0u32;
            group.bench_with_input(BenchmarkId::new(affinity, n), &n, |b, _| {
                b.iter(|| {
                    last = last.wrapping_add(1);
                    let ip = Some(IpAddr::from(last.to_be_bytes()));
                    black_box(Sticky(&state).route(
                        &lb,
                        std::iter::empty(),
                        None,
                        ip,
                        now,
                        &mut rand,
                    ))
                })
            });
        }
    }
    group.finish();
}

fn header_session_hit(c: &mut Criterion) {
    let (state, lb) = state("header", "{headers: [X-User, \"cookie:sid\"]}", 10);
    let now = state.clock.now();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-user", "alice@example.com".parse().unwrap());
    headers.insert(
        "cookie",
        "theme=dark; sid=0123456789abcdef; lang=en".parse().unwrap(),
    );
    let spec = lb.header_key.as_ref().unwrap();
    let mut rand = dice();
    let key = spec.session_key(lb.id, &headers);
    let first = Sticky(&state)
        .route(&lb, std::iter::empty(), key, None, now, &mut rand)
        .unwrap();
    Sticky(&state).commit(&lb, &first, now);
    c.bench_function("header session hit (key + table)", |b| {
        b.iter(|| {
            let key = spec.session_key(lb.id, black_box(&headers));
            black_box(Sticky(&state).route(&lb, std::iter::empty(), key, None, now, &mut rand))
        })
    });
}

criterion_group!(benches, cookie_hit, new_pick, header_session_hit);
criterion_main!(benches);
