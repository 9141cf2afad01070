//! The access-log line, pure: plain data in ([`Record`]), one line out, in
//! `text` or `json` (`tether.access_log.format`). No clocks, no I/O; the
//! writer ([`super`]) only moves the finished line to stderr.
//!
//! `text` keeps the fields and order operators and tests grep
//! (`client= ... total_time=`, then `error=` and `reason=` when they apply)
//! and adds the newer ones after them; `json` writes every field on every
//! line, `null` where none applies.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use serde::Serialize;

use crate::config::AccessLogFormat;
use crate::text::{push_decimal, push_hex, push_ip};

/// One finished (or refused) request, as the log shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record<'a> {
    /// When the request finished, Unix time in milliseconds.
    pub unix_ms: u64,
    pub client: Option<IpAddr>,
    /// The normalised host it named (`None`: refused before one was known).
    pub host: Option<&'a str>,
    pub method: &'a str,
    /// The request target, path and query.
    pub path: &'a str,
    /// The status written (0: none).
    pub status: u16,
    pub load_balancer: Option<&'a str>,
    pub pool: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    /// The final affinity decision's name (`none`, `new`, `hit`, ...).
    pub affinity: &'a str,
    /// Upstream connect to response header.
    pub upstream_time: Option<Duration>,
    pub total_time: Duration,
    /// Pingora's error kind, when the request failed.
    pub error: Option<&'a str>,
    /// Why it was refused before routing.
    pub reason: Option<&'a str>,
    /// Response bytes written to the client (body).
    pub bytes_sent: u64,
    /// The endpoint's socket address the request was sent to.
    pub upstream: Option<SocketAddr>,
    /// The client's `X-Request-Id`, or the one Tether gave the request.
    pub request_id: Option<&'a str>,
    /// The load balancing rule that applied (the last that matched).
    pub rule: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// Request body bytes read from the client (for an upgraded connection,
    /// a WebSocket: everything the client sent after the `101`), all of
    /// which went upstream unless the request failed.
    pub bytes_received: u64,
}

/// Appends `record`'s line (with its newline) to `out`.
pub fn write_line(record: &Record<'_>, format: AccessLogFormat, out: &mut String) {
    match format {
        AccessLogFormat::Text => text(record, out),
        AccessLogFormat::Json => json(record, out),
    }
    out.push('\n');
}

/// `2026-11-30T07:19:39Z` (seconds) or `2026-11-30T07:19:39.123Z`, UTC.
/// Chrono formats the date and time once per second and thread (its format
/// parsed once); the lines of the rest of that second reuse the text.
fn timestamp(unix_ms: u64, millis: bool, out: &mut String) {
    static SECONDS: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%dT%H:%M:%S").collect());
    thread_local! {
        /// The second last formatted on this thread, and its text (`None`:
        /// out of chrono's range).
        static SECOND: RefCell<(u64, Option<String>)> = const { RefCell::new((u64::MAX, None)) };
    }
    let secs = unix_ms / 1000;
    let known = SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            *text = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|t| t.format_with_items(SECONDS.iter()).to_string());
        }
        text.as_deref().map(|t| out.push_str(t)).is_some()
    });
    if !known {
        out.push('-');
        return;
    }
    if millis {
        out.push('.');
        push_decimal(unix_ms % 1000, 3, out);
    }
    out.push('Z');
}

/// Seconds with six decimals (microseconds), by integer arithmetic.
fn seconds(d: Duration, out: &mut String) {
    push_decimal(d.as_secs(), 1, out);
    out.push('.');
    push_decimal(u64::from(d.subsec_micros()), 6, out);
}

fn dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

/// env_logger's prefix (so `access]` still finds the line), then the fields.
fn text(r: &Record<'_>, out: &mut String) {
    out.push('[');
    timestamp(r.unix_ms, false, out);
    out.push_str(" INFO  access] client=");
    match r.client {
        Some(ip) => push_ip(ip, out),
        None => out.push('-'),
    }
    for (key, value) in [
        (" host=", dash(r.host)),
        (" method=", r.method),
        (" path=", r.path),
    ] {
        out.push_str(key);
        out.push_str(value);
    }
    out.push_str(" status=");
    push_decimal(u64::from(r.status), 1, out);
    for (key, value) in [
        (" lb=", dash(r.load_balancer)),
        (" pool=", dash(r.pool)),
        (" endpoint=", dash(r.endpoint)),
        (" affinity=", r.affinity),
    ] {
        out.push_str(key);
        out.push_str(value);
    }
    out.push_str(" upstream_time=");
    match r.upstream_time {
        Some(t) => seconds(t, out),
        None => out.push('-'),
    }
    out.push_str(" total_time=");
    seconds(r.total_time, out);
    if let Some(e) = r.error {
        out.push_str(" error=");
        quoted(e, out);
    }
    if let Some(reason) = r.reason {
        out.push_str(" reason=");
        out.push_str(reason);
    }
    out.push_str(" bytes_sent=");
    push_decimal(r.bytes_sent, 1, out);
    out.push_str(" upstream=");
    match r.upstream {
        Some(SocketAddr::V4(a)) => {
            push_ip(IpAddr::V4(*a.ip()), out);
            out.push(':');
            push_decimal(u64::from(a.port()), 1, out);
        }
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.push('-'),
    }
    out.push_str(" request_id=");
    token_or_quoted(r.request_id, out);
    out.push_str(" rule=");
    token_or_quoted(r.rule, out);
    out.push_str(" user_agent=");
    match r.user_agent {
        Some(ua) => quoted(ua, out),
        None => out.push('-'),
    }
    out.push_str(" bytes_received=");
    push_decimal(r.bytes_received, 1, out);
}

/// A value that may be written bare: non-empty, no space, quote,
/// backslash or control character.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'=')
}

fn token_or_quoted(s: Option<&str>, out: &mut String) {
    match s {
        None => out.push('-'),
        Some(s) if is_token(s) => out.push_str(s),
        Some(s) => quoted(s, out),
    }
}

/// `"..."` with `"` and `\` escaped and control characters as `\xNN`, so
/// that one line stays one line whatever a client sent.
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        // Printable ASCII without a quote or backslash: as it is.
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON object: every field on every line, `null` where none applies.
#[derive(Serialize)]
struct Json<'a> {
    time: &'a str,
    client: Option<IpAddr>,
    host: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
    load_balancer: Option<&'a str>,
    pool: Option<&'a str>,
    endpoint: Option<&'a str>,
    affinity: &'a str,
    upstream_time: Option<f64>,
    total_time: f64,
    error: Option<&'a str>,
    reason: Option<&'a str>,
    bytes_sent: u64,
    upstream: Option<SocketAddr>,
    request_id: Option<&'a str>,
    rule: Option<&'a str>,
    user_agent: Option<&'a str>,
    bytes_received: u64,
}

fn json(r: &Record<'_>, out: &mut String) {
    let mut time = String::with_capacity(24);
    timestamp(r.unix_ms, true, &mut time);
    let line = Json {
        time: &time,
        client: r.client,
        host: r.host,
        method: r.method,
        path: r.path,
        status: r.status,
        load_balancer: r.load_balancer,
        pool: r.pool,
        endpoint: r.endpoint,
        affinity: r.affinity,
        upstream_time: r.upstream_time.map(|t| t.as_secs_f64()),
        total_time: r.total_time.as_secs_f64(),
        error: r.error,
        reason: r.reason,
        bytes_sent: r.bytes_sent,
        upstream: r.upstream,
        request_id: r.request_id,
        rule: r.rule,
        user_agent: r.user_agent,
        bytes_received: r.bytes_received,
    };
    // Serialising plain strings and numbers into memory cannot fail.
    if let Ok(s) = serde_json::to_string(&line) {
        out.push_str(&s);
    }
}

/// The client's `X-Request-Id` is kept when it is a short token; otherwise
/// (absent, too long, spaces or control characters) Tether gives the request
/// its own.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// A new request id: 32 hex digits from 128 random bits.
pub fn new_request_id(random: u128) -> String {
    let mut id = String::with_capacity(32);
    push_hex(random, &mut id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            unix_ms: 1_796_023_179_123,
            client: Some("127.0.0.1".parse().unwrap()),
            host: Some("shop.test"),
            method: "GET",
            path: "/cart?x=1",
            status: 200,
            load_balancer: Some("*"),
            pool: Some("p"),
            endpoint: Some("web-1"),
            affinity: "hit",
            upstream_time: Some(Duration::from_micros(412)),
            total_time: Duration::from_micros(538),
            bytes_sent: 1234,
            upstream: Some("127.0.0.1:8081".parse().unwrap()),
            request_id: Some("abc-1"),
            user_agent: Some("curl/8.5 \"x\"\n"),
            bytes_received: 56,
            ..Record::default()
        }
    }

    #[test]
    fn text_keeps_the_old_fields_first_and_adds_the_new_after() {
        let mut out = String::new();
        write_line(&record(), AccessLogFormat::Text, &mut out);
        assert_eq!(
            out,
            "[2026-11-30T07:19:39Z INFO  access] client=127.0.0.1 host=shop.test method=GET path=/cart?x=1 status=200 lb=* pool=p endpoint=web-1 affinity=hit upstream_time=0.000412 total_time=0.000538 bytes_sent=1234 upstream=127.0.0.1:8081 request_id=abc-1 rule=- user_agent=\"curl/8.5 \\\"x\\\"\\x0a\" bytes_received=56\n"
        );
    }

    #[test]
    fn text_of_a_refusal_has_dashes_error_and_reason() {
        let r = Record {
            unix_ms: 0,
            method: "-",
            path: "-",
            status: 408,
            affinity: "none",
            error: Some("ReadTimedout"),
            reason: Some("header_timeout"),
            ..Record::default()
        };
        let mut out = String::new();
        write_line(&r, AccessLogFormat::Text, &mut out);
        assert!(out.ends_with("client=- host=- method=- path=- status=408 lb=- pool=- endpoint=- affinity=none upstream_time=- total_time=0.000000 error=\"ReadTimedout\" reason=header_timeout bytes_sent=0 upstream=- request_id=- rule=- user_agent=- bytes_received=0\n"), "{out}");
    }

    #[test]
    fn json_has_every_field_on_every_line() {
        let mut out = String::new();
        write_line(&record(), AccessLogFormat::Json, &mut out);
        assert!(out.ends_with('\n') && out.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["time"], "2026-11-30T07:19:39.123Z");
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream_time"], 0.000412);
        assert_eq!(v["bytes_sent"], 1234);
        assert_eq!(v["bytes_received"], 56);
        assert_eq!(v["upstream"], "127.0.0.1:8081");
        assert_eq!(v["user_agent"], "curl/8.5 \"x\"\n");
        assert_eq!(v["rule"], serde_json::Value::Null);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 20, "{keys:?}");

        let mut empty = String::new();
        write_line(&Record::default(), AccessLogFormat::Json, &mut empty);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 20, "{empty}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        for (ms, text) in [
            (0u64, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_796_023_179_123, "2026-11-30T07:19:39.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        ] {
            let mut ours = String::new();
            timestamp(ms, true, &mut ours);
            assert_eq!(ours, text);
        }
        let mut secs = String::new();
        timestamp(1_796_023_179_123, false, &mut secs);
        assert_eq!(secs, "2026-11-30T07:19:39Z");
        // The same second again (from the thread's cache), then past chrono's range.
        let mut again = String::new();
        timestamp(1_796_023_179_999, true, &mut again);
        assert_eq!(again, "2026-11-30T07:19:39.999Z");
        let mut far = String::new();
        timestamp(u64::MAX, true, &mut far);
        assert_eq!(far, "-");
    }

    #[test]
    fn quoted_values_escape_what_would_break_the_line() {
        let mut q = String::new();
        quoted("plain ua/1.0 (x; y)", &mut q);
        assert_eq!(q, "\"plain ua/1.0 (x; y)\"");
        let mut q = String::new();
        quoted("ü\u{85}\"", &mut q);
        assert_eq!(q, "\"ü\\x85\\\"\"");
    }

    #[test]
    fn durations_have_six_decimals() {
        for (d, text) in [
            (Duration::ZERO, "0.000000"),
            (Duration::from_nanos(1_999), "0.000001"),
            (Duration::from_micros(538), "0.000538"),
            (Duration::from_millis(61_250), "61.250000"),
        ] {
            let mut out = String::new();
            seconds(d, &mut out);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn request_ids() {
        assert!(acceptable_request_id(b"f3a9-01:x/y"));
        assert!(!acceptable_request_id(b""));
        assert!(!acceptable_request_id(b"has space"));
        assert!(!acceptable_request_id(&[b'a'; 129]));
        assert_eq!(new_request_id(0xabc), format!("{:032x}", 0xabc));
        assert_eq!(new_request_id(u128::MAX), "f".repeat(32));
    }
}
