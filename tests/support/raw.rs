//! Raw HTTP/1 over a plain `TcpStream`, for the bytes a real client would
//! never send (forged `Host`, pipelined requests, trickled headers and
//! bodies, malformed framing). Every read is bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connection to `addr` whose reads time out after 200 ms (so the loops
/// below can check their deadline).
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Reads until the peer closes, `done` holds for what came, or `within`
/// passes; returns what came and whether the peer closed.
pub fn read_until(
    s: &mut TcpStream,
    within: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> (String, bool) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
        if done(&out) {
            break;
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

/// Reads until the peer closes or `within` passes.
pub fn read_for(s: &mut TcpStream, within: Duration) -> (String, bool) {
    read_until(s, within, |_| false)
}

/// Whether `bytes` hold a whole response: its header and `Content-Length`
/// bytes of body.
pub fn whole_response(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    body.len() >= len
}

/// Sends `request` on a new connection to `addr`; what came back until the
/// peer closed or 3 s passed.
pub fn exchange_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = raw_connect(addr);
    s.write_all(request).expect("send");
    read_for(&mut s, Duration::from_secs(3)).0
}

/// The status code of a response's text (`HTTP/1.1 400 ...` → 400).
pub fn status_of(response: &str) -> Option<u16> {
    response.get(9..12)?.parse().ok()
}
