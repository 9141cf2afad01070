//! Background services Pingora runs beside the proxy: each a
//! `BackgroundService` that moves data between a clock or a signal and the
//! state, deciding nothing itself.
//!
//! - [`dns`]: re-resolves endpoints named by host name (`dns_refresh`).
//! - [`sweeper`]: expires idle sessions of the session table.
//! - [`reload`]: `SIGHUP` reloads the file in place.
//! - [`stop`]: a second `SIGINT` / `SIGTERM` stops at once.
//! - [`upgraded`]: closes the open WebSockets of endpoints that may take no
//!   more traffic.

pub mod dns;
pub mod reload;
pub mod stop;
pub mod sweeper;
pub mod upgraded;
