//! A chunked request body's framing, followed as its bytes pass through the
//! front door (RFC 9112 7.1): where the body ends (so what follows is the
//! next pipelined request, which the front door then checks like any other),
//! and the one leniency of Pingora's chunk parser that HAProxy and NGINX
//! refuse: a chunk-size line without digits. `httparse::parse_chunk_size`,
//! which Pingora uses, reads an empty line as size 0 — the last chunk — so
//! `\r\n` where a size belongs ends the body early. Everything else about a
//! size line (extensions, its end) is left to that parser. Pure: bytes in,
//! verdicts out.

/// Longest chunk-size line (digits and extensions), and longest trailer
/// section, the front door follows; longer ones are refused.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 65_536;

/// Where the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a chunk-size line.
    SizeStart,
    /// In a size line: its size so far, whether digits still count, its length.
    Size {
        size: u64,
        digits: bool,
        len: usize,
    },
    /// In a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// In the trailer section: whether the current line is empty so far, bytes so far.
    Trailers {
        empty_line: bool,
        len: usize,
    },
    /// The body ended.
    Done,
}

/// A chunked body being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    at: At,
}

/// Why a chunked body is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

impl Default for Chunked {
    fn default() -> Self {
        Chunked { at: At::SizeStart }
    }
}

impl Chunked {
    /// Whether the body has ended.
    pub fn done(&self) -> bool {
        self.at == At::Done
    }

    /// Feeds bytes; returns how many of them belong to the body (all of them
    /// unless the body ends inside `data`).
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.at = match self.at {
                At::Done => return Ok(i),
                At::SizeStart if b.is_ascii_hexdigit() => At::Size {
                    size: hex(b),
                    digits: true,
                    len: 1,
                },
                At::SizeStart => return Err(BadChunk),
                At::Size { len, .. } if len >= MAX_LINE => return Err(BadChunk),
                At::Size {
                    size,
                    digits: true,
                    len,
                } if b.is_ascii_hexdigit() => {
                    if size >> 60 != 0 {
                        return Err(BadChunk);
                    }
                    At::Size {
                        size: size << 4 | hex(b),
                        digits: true,
                        len: len + 1,
                    }
                }
                At::Size { size: 0, .. } if b == b'\n' => At::Trailers {
                    empty_line: true,
                    len: 0,
                },
                At::Size { size, .. } if b == b'\n' => At::Data(size),
                At::Size { size, len, .. } => At::Size {
                    size,
                    digits: false,
                    len: len + 1,
                },
                At::Data(left) => {
                    let take = (data.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    self.at = if left == 0 {
                        At::DataCr
                    } else {
                        At::Data(left)
                    };
                    continue;
                }
                At::DataCr if b == b'\r' => At::DataLf,
                At::DataCr | At::DataLf if b == b'\n' => At::SizeStart,
                At::DataCr | At::DataLf => return Err(BadChunk),
                At::Trailers { len, .. } if len >= MAX_TRAILERS => return Err(BadChunk),
                At::Trailers {
                    empty_line: true, ..
                } if b == b'\n' => At::Done,
                At::Trailers { len, .. } if b == b'\n' => At::Trailers {
                    empty_line: true,
                    len: len + 1,
                },
                At::Trailers { empty_line, len } => At::Trailers {
                    empty_line: empty_line && b == b'\r',
                    len: len + 1,
                },
            };
            i += 1;
            if self.at == At::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }
}

fn hex(b: u8) -> u64 {
    match b {
        b'0'..=b'9' => u64::from(b - b'0'),
        b'a'..=b'f' => u64::from(b - b'a' + 10),
        _ => u64::from(b - b'A' + 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole body at once, then one byte at a time: the same verdict.
    fn verdict(body: &[u8]) -> Result<usize, BadChunk> {
        let whole = Chunked::default().feed(body);
        let mut c = Chunked::default();
        let mut piecewise = Ok(0);
        for (i, b) in body.iter().enumerate() {
            match c.feed(std::slice::from_ref(b)) {
                Err(e) => {
                    piecewise = Err(e);
                    break;
                }
                Ok(0) => break,
                Ok(_) if c.done() => {
                    piecewise = Ok(i + 1);
                    break;
                }
                Ok(_) => piecewise = Ok(i + 1),
            }
        }
        assert_eq!(whole, piecewise, "{}", body.escape_ascii());
        whole
    }

    #[test]
    fn the_body_ends_after_the_last_chunk_and_its_trailers() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            verdict(&[&body[..], b"GET / HTTP/1.1"].concat()),
            Ok(body.len())
        );
        let body = b"A;ext=1\r\n0123456789\r\n0\r\nX-Trailer: a\r\n\r\n";
        assert_eq!(verdict(&[&body[..], b"next"].concat()), Ok(body.len()));
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"5\r\nhel"), Ok(6));
        assert!(!c.done());
        assert_eq!(c.feed(b"lo\r\n0\r\n\r\nX"), Ok(9));
        assert!(c.done());
    }

    #[test]
    fn a_size_line_without_digits_is_refused() {
        assert_eq!(verdict(b"\r\nGET /smuggled HTTP/1.1\r\n"), Err(BadChunk));
        assert_eq!(verdict(b"5\r\nhello\r\n\r\n"), Err(BadChunk));
        assert_eq!(verdict(b";ext\r\n"), Err(BadChunk));
        assert_eq!(verdict(b" 5\r\nhello\r\n"), Err(BadChunk));
        assert_eq!(
            verdict(b"5\r\nhelloXX0\r\n\r\n"),
            Err(BadChunk),
            "data not followed by CRLF"
        );
        assert_eq!(
            verdict(b"10000000000000000\r\n"),
            Err(BadChunk),
            "over 64 bits"
        );
    }
}
