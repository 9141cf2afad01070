//! WebSockets through the real binary (issue 19): an upgraded connection is relayed
//! both ways, counted (`tether_upgraded_connections`), steers `least_connections`,
//! and follows its endpoint's state — closed after `tether.upgraded_connections.close_grace`
//! once its endpoint must take no more traffic (a drain ended, disabled without drain,
//! unhealthy, ejected, removed by a reload, an old process's hot-upgrade grace ended),
//! kept while a drain runs and across a reload that keeps the endpoint. Every close is
//! followed by a reconnect with the session cookie, which must land on a usable endpoint.
// Measures real time on purpose (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use support::websocket::WebSocket;
use support::*;

/// A cookie-affinity load balancer `"*"` over pool `p` of `ups`, with the decision header.
fn sticky<'a>(ups: impl IntoIterator<Item = &'a Upstream>) -> Tether {
    tether()
        .listener(free_port())
        .decision_header()
        .load_balancer("*", lb(["p"]).affinity(Affinity::Cookie))
        .pool("p", pool(ups))
}

#[test]
fn a_websocket_through_tether_echoes() {
    let a = Upstream::healthy("a");
    let proxy = sticky([&a]).start();
    let mut ws = WebSocket::connect(proxy.addr(), "x", "/ws", None).expect("handshake");
    assert_eq!(ws.ask("hello"), Ok("hello".to_string()));
    assert_eq!(ws.whoami(), Ok("a".to_string()));
    assert!(
        ws.cflb_cookie().is_some(),
        "a new session is pinned: {:?}",
        ws.headers
    );
    assert_eq!(a.websockets_open(), 1);
    ws.close();
    assert!(
        wait_until(std::time::Duration::from_secs(10), || a.websockets_open()
            == 0),
        "the client's close reaches the upstream"
    );
}
