//! What the front door needs to know of the HTTP/1 bytes a client sends and
//! Tether answers, without parsing HTTP (Pingora does that): where a request
//! header ends, how big it got, its request line for the log, and the status
//! of a response. Pure: bytes in, facts out.

/// The start of a request header seen so far: the bytes counted and the end
/// marker (`CRLF CRLF`, or `LF LF` as httparse also accepts) looked for
/// across reads. One scan per request, without allocating: the request
/// line's buffer is handed from one request's scan to the next
/// ([`HeaderScan::reusing`], [`HeaderScan::into_line`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderScan {
    /// Bytes of the header received so far.
    pub bytes: usize,
    /// The last bytes of the previous read (up to 3, `tail_len` of them), so
    /// a marker split between two reads is found.
    tail: [u8; 3],
    tail_len: usize,
    /// The request line as received (at most [`REQUEST_LINE_MAX`] bytes), for the log.
    request_line: Vec<u8>,
    line_done: bool,
    /// The request line's bytes checked as they arrive.
    line_check: LineCheck,
}

/// How much of the request line is kept for the access log.
pub const REQUEST_LINE_MAX: usize = 256;

/// What one read told about the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// Not complete yet: `bytes` so far.
    Partial { bytes: usize },
    /// Complete: the header is `bytes` long and ended `consumed` bytes into
    /// this read (the rest is body, or the next pipelined request).
    Complete { bytes: usize, consumed: usize },
    /// The request line has a byte no request target may hold (a space, a
    /// control character, a byte outside ASCII, a fragment's `#`): refused
    /// as soon as it is seen, as HAProxy and NGINX do. Pingora's parser
    /// would instead percent-encode the target and pass it on
    /// (`escape_illegal_request_line`, pingora-core 0.9.1
    /// `src/protocols/http/v1/server.rs:436-452`) and drop a fragment
    /// (`RequestHeader::set_raw_path`, pingora-http 0.9.1 `src/lib.rs:322`),
    /// so the application could not tell.
    InvalidRequestLine,
}

impl HeaderScan {
    /// A new scan keeping its request line in `line`'s allocation (emptied).
    pub fn reusing(mut line: Vec<u8>) -> HeaderScan {
        line.clear();
        HeaderScan {
            request_line: line,
            ..HeaderScan::default()
        }
    }

    /// The request line's bytes as received (its buffer, for the next scan).
    pub fn into_line(self) -> Vec<u8> {
        self.request_line
    }

    /// Feeds the bytes of one read.
    pub fn feed(&mut self, data: &[u8]) -> Scanned {
        if !self.line_done {
            let end = memchr::memchr(b'\n', data);
            let take = end.unwrap_or(data.len());
            let room = REQUEST_LINE_MAX.saturating_sub(self.request_line.len());
            self.request_line.extend_from_slice(&data[..take.min(room)]);
            self.line_done = end.is_some();
        }
        // Look for the marker in the tail of the last read followed by this one.
        let carried = self.tail_len;
        let head = data.len().min(3);
        let mut window = [0u8; 6];
        window[..carried].copy_from_slice(&self.tail[..carried]);
        window[carried..carried + head].copy_from_slice(&data[..head]);
        let window = &window[..carried + head];
        let found = find_end(window)
            .filter(|&end| end > carried)
            .map(|end| end - carried)
            .or_else(|| find_end(data));
        // The request line is checked up to the header's end, not past it.
        let header_part = &data[..found.unwrap_or(data.len())];
        if !self.line_check.done() && self.line_check.feed(header_part).is_err() {
            return Scanned::InvalidRequestLine;
        }
        match found {
            Some(consumed) => {
                self.bytes += consumed;
                Scanned::Complete {
                    bytes: self.bytes,
                    consumed,
                }
            }
            None => {
                self.bytes += data.len();
                // The last 3 bytes of the tail followed by this read.
                let last = if data.len() >= 3 {
                    &data[data.len() - 3..]
                } else {
                    &window[window.len().saturating_sub(3)..]
                };
                self.tail[..last.len()].copy_from_slice(last);
                self.tail_len = last.len();
                Scanned::Partial { bytes: self.bytes }
            }
        }
    }

    /// The request line so far, for the log (`-` fields when it is not one).
    pub fn request_line(&self) -> RequestLine {
        RequestLine::parse(&self.request_line)
    }
}

/// Where the request line's check is: `METHOD SP TARGET SP VERSION CRLF`,
/// after any empty lines (which httparse skips too). Only what Pingora's
/// parser would otherwise repair or drop is decided here; everything else
/// about the line (a method's tokens, the version) is left to that parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LineCheck {
    #[default]
    Leading,
    Method,
    Target {
        empty: bool,
    },
    Version,
    VersionCr,
    Done,
}

/// Bytes a request target may hold: visible ASCII but `#` (RFC 9112 3.2,
/// RFC 3986: a fragment is never sent).
fn target_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && b != b'#'
}

impl LineCheck {
    fn done(self) -> bool {
        self == LineCheck::Done
    }

    /// Feeds bytes of the header (the check stops at the request line's end).
    fn feed(&mut self, data: &[u8]) -> Result<(), ()> {
        let mut bytes = data.iter();
        while let Some(&b) = bytes.next() {
            *self = match *self {
                LineCheck::Leading if b == b'\r' || b == b'\n' => LineCheck::Leading,
                LineCheck::Leading | LineCheck::Method if b == b' ' => {
                    LineCheck::Target { empty: true }
                }
                LineCheck::Leading | LineCheck::Method if b.is_ascii_control() => return Err(()),
                LineCheck::Leading | LineCheck::Method => LineCheck::Method,
                LineCheck::Target { empty: false } if b == b' ' => LineCheck::Version,
                LineCheck::Target { .. } if target_byte(b) => {
                    // The rest of the target in one pass.
                    let rest = bytes.as_slice();
                    let run = rest
                        .iter()
                        .position(|&b| !target_byte(b))
                        .unwrap_or(rest.len());
                    bytes = rest[run..].iter();
                    LineCheck::Target { empty: false }
                }
                LineCheck::Target { .. } => return Err(()),
                LineCheck::Version if b == b'\r' => LineCheck::VersionCr,
                LineCheck::Version | LineCheck::VersionCr if b == b'\n' => LineCheck::Done,
                LineCheck::Version if b == b' ' || b.is_ascii_control() => return Err(()),
                LineCheck::Version => LineCheck::Version,
                LineCheck::VersionCr => return Err(()),
                LineCheck::Done => return Ok(()),
            };
            if *self == LineCheck::Done {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The index just past the first end-of-header marker in `data`: both
/// markers end in `LF`, so the first `LF` that ends one is the earliest.
fn find_end(data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data).find_map(|i| {
        let lf_lf = i >= 1 && data[i - 1] == b'\n';
        let crlf_crlf = i >= 3 && data[i - 3..=i] == *b"\r\n\r\n";
        (lf_lf || crlf_crlf).then_some(i + 1)
    })
}

/// A request line's method and target as text safe for one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    pub target: String,
}

impl RequestLine {
    /// The method and target of a request line's bytes as received.
    pub fn parse(line: &[u8]) -> RequestLine {
        let text: String = String::from_utf8_lossy(line)
            .chars()
            .map(|c| if c.is_control() || c == '"' { '?' } else { c })
            .collect();
        let mut parts = text.split(' ').filter(|p| !p.is_empty());
        let mut field = || parts.next().map_or_else(|| "-".to_string(), str::to_string);
        RequestLine {
            method: field(),
            target: field(),
        }
    }
}

/// The status code at the start of an HTTP/1 response (`HTTP/1.1 400 ...`).
pub fn response_status(data: &[u8]) -> Option<u16> {
    let rest = data.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The client connection preface of HTTP/2 with prior knowledge (h2c, RFC
/// 9113 section 3.4): what a gRPC client sends first on a plain connection.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a plain connection's first bytes say about HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// They begin with the whole preface: HTTP/2, for Pingora's h2 server.
    Whole,
    /// They are the preface's beginning, shorter than it: read on.
    Partial,
    /// HTTP/1 (or nothing of either yet, when empty).
    No,
}

pub fn h2_preface(data: &[u8]) -> Preface {
    if data.starts_with(H2_PREFACE) {
        Preface::Whole
    } else if !data.is_empty() && H2_PREFACE.starts_with(data) {
        Preface::Partial
    } else {
        Preface::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_in_one_read() {
        let mut s = HeaderScan::default();
        let req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(
            s.feed(req),
            Scanned::Complete {
                bytes: req.len() - 4,
                consumed: req.len() - 4
            }
        );
        assert_eq!(
            s.request_line(),
            RequestLine {
                method: "GET".into(),
                target: "/x".into()
            }
        );
    }

    #[test]
    fn a_marker_split_across_reads_is_found() {
        let req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 1..req.len() {
            let mut s = HeaderScan::default();
            let first = s.feed(&req[..cut]);
            let second = s.feed(&req[cut..]);
            assert!(
                matches!(first, Scanned::Partial { .. }) || cut == req.len(),
                "cut {cut}: {first:?}"
            );
            assert_eq!(
                second,
                Scanned::Complete {
                    bytes: req.len(),
                    consumed: req.len() - cut
                },
                "cut {cut}"
            );
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let req = b"GET / HTTP/1.1\nHost: a\n\nrest";
        let mut s = HeaderScan::default();
        let mut done = None;
        for (i, b) in req.iter().enumerate() {
            if let Scanned::Complete { bytes, .. } = s.feed(std::slice::from_ref(b)) {
                done = Some((i, bytes));
                break;
            }
        }
        assert_eq!(done, Some((23, 24)));
    }

    #[test]
    fn partial_headers_count_their_bytes() {
        let mut s = HeaderScan::default();
        assert_eq!(
            s.feed(b"GET / HTTP/1.1\r\n"),
            Scanned::Partial { bytes: 16 }
        );
        assert_eq!(s.feed(b"X-A: 1\r\n"), Scanned::Partial { bytes: 24 });
    }

    #[test]
    fn request_lines_are_made_safe_for_the_log() {
        let mut s = HeaderScan::default();
        s.feed(b"GET  /a\"b\x01 HTTP/1.1\r\n");
        assert_eq!(
            s.request_line(),
            RequestLine {
                method: "GET".into(),
                target: "/a?b?".into()
            }
        );
        let mut s = HeaderScan::default();
        s.feed(&[b'A'; 1000]);
        assert_eq!(s.request_line().method.len(), REQUEST_LINE_MAX);
        assert_eq!(HeaderScan::default().request_line().method, "-");
    }

    #[test]
    fn a_reused_scan_starts_afresh() {
        let mut s = HeaderScan::default();
        s.feed(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
        let line = s.into_line();
        assert_eq!(line, b"GET /first HTTP/1.1\r");
        let mut s = HeaderScan::reusing(line);
        assert_eq!(
            s.feed(b"POST /b HTTP/1.1\r\n"),
            Scanned::Partial { bytes: 18 }
        );
        assert_eq!(s.request_line().method, "POST");
        assert_eq!(s.request_line().target, "/b");
    }

    /// The first end marker, the plain way.
    fn naive_end(data: &[u8]) -> Option<usize> {
        let crlf = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4);
        let lf = data.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
        match (crlf, lf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[test]
    fn the_end_marker_is_the_first_of_either_kind() {
        let alphabet = [b'\r', b'\n', b'a'];
        // Every string of up to 7 bytes over CR, LF and one other byte.
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                let mut k = n;
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[k % 3];
                        k /= 3;
                        b
                    })
                    .collect();
                assert_eq!(find_end(&data), naive_end(&data), "{data:?}");
            }
        }
    }

    fn line_verdict(request: &[u8]) -> bool {
        let mut s = HeaderScan::default();
        s.feed(request) != Scanned::InvalidRequestLine
    }

    #[test]
    fn request_targets_pingora_would_re_encode_or_truncate_are_refused() {
        for ok in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /a?b=c&d=%20e HTTP/1.1\r\n",
            b"GET http://a.test/x HTTP/1.1\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"\r\nGET /after-an-empty-line HTTP/1.1\r\n",
            b"GET /~user/!$&'()*+,;=:@[] HTTP/1.1\r\n",
            b"GET /not-yet-complete",
        ] {
            assert!(line_verdict(ok), "{}", ok.escape_ascii());
        }
        for bad in [
            &b"GET /public /admin HTTP/1.1\r\n"[..],
            b"GET /public\t/admin HTTP/1.1\r\n",
            b"GET /public\r/admin HTTP/1.1\r\n",
            b"GET /public\0/admin HTTP/1.1\r\n",
            b"GET /public\x0b/admin HTTP/1.1\r\n",
            b"GET /public\x7f/admin HTTP/1.1\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n",
            b"GET /a#frag HTTP/1.1\r\n",
            b"GET  /a HTTP/1.1\r\n",
            b"GET /a HTTP/1.1 x\r\n",
            b"GET /a HTTP/1.1\rx\n",
            b"G\x01T /a HTTP/1.1\r\n",
        ] {
            assert!(!line_verdict(bad), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn the_request_line_check_holds_across_reads() {
        let bad = b"GET /public /admin HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 1..bad.len() {
            let mut s = HeaderScan::default();
            let verdicts = [s.feed(&bad[..cut]), s.feed(&bad[cut..])];
            assert!(verdicts.contains(&Scanned::InvalidRequestLine), "cut {cut}");
        }
        // Headers after the request line are not the check's business.
        let mut s = HeaderScan::default();
        assert!(matches!(
            s.feed(b"GET /a HTTP/1.1\r\nX: a b\t#\r\n\r\n"),
            Scanned::Complete { .. }
        ));
    }

    #[test]
    fn response_statuses() {
        assert_eq!(response_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(response_status(b"HTTP/1.0 101 x"), Some(101));
        assert_eq!(response_status(b"HTTP/1.1 4"), None);
        assert_eq!(response_status(b"hello"), None);
    }

    #[test]
    fn the_h2c_preface_is_told_from_http1() {
        let preface = &H2_PREFACE[..];
        assert_eq!(h2_preface(preface), Preface::Whole);
        let mut more = preface.to_vec();
        more.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        assert_eq!(h2_preface(&more), Preface::Whole);
        assert_eq!(h2_preface(b"PRI * HTTP/2"), Preface::Partial);
        assert_eq!(h2_preface(b"P"), Preface::Partial);
        assert_eq!(h2_preface(b""), Preface::No);
        assert_eq!(h2_preface(b"POST / HTTP/1.1\r\n"), Preface::No);
        assert_eq!(h2_preface(b"PRI * HTTP/2.0\r\n\r\n"), Preface::Partial);
        assert_eq!(h2_preface(b"PRI * HTTP/1.1\r\n\r\n"), Preface::No);
    }
}
