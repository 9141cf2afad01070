//! The `grpc.health.v1` health check of a `type: grpc` monitor, pure: the
//! `Health/Check` request's body and the verdict on its answer.
//!
//! The messages are one string field (`HealthCheckRequest.service = 1`) and
//! one enum field (`HealthCheckResponse.status = 1`): their protobuf wire
//! form is written and read here in a few lines rather than with a protobuf
//! crate and generated code. Each gRPC message is framed by a compression
//! flag byte and a 4-byte big-endian length (gRPC over HTTP/2, "Length-
//! Prefixed-Message"); the probe never asks for compression.

use bytes::{BufMut, Bytes, BytesMut};

/// The method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// The framed `HealthCheckRequest { service }` (an empty name, the whole
/// server, is the empty message).
pub fn check_request(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0); // not compressed
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    framed.freeze()
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// A varint at the start of `data`: its value and the bytes it took.
fn varint(data: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// `HealthCheckResponse.status` of a framed response body (0, UNKNOWN,
/// when absent, as protobuf's default).
fn serving_status(body: &[u8]) -> Result<u64, String> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err("the answer has no message".into());
    };
    if flag != 0 {
        return Err("the answer is compressed (not asked for)".into());
    }
    let length = rest
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("the answer's message frame is cut short")?;
    let mut message = rest
        .get(4..4 + length)
        .ok_or("the answer's message frame is cut short")?;
    let mut status = 0;
    let malformed = || "the answer is not a HealthCheckResponse".to_string();
    while !message.is_empty() {
        let (key, used) = varint(message).ok_or_else(malformed)?;
        message = &message[used..];
        let skip = match key & 7 {
            0 => {
                let (value, used) = varint(message).ok_or_else(malformed)?;
                if key >> 3 == 1 {
                    status = value;
                }
                used
            }
            1 => 8,
            2 => {
                let (len, used) = varint(message).ok_or_else(malformed)?;
                usize::try_from(len)
                    .ok()
                    .and_then(|len| len.checked_add(used))
                    .ok_or_else(malformed)?
            }
            5 => 4,
            _ => return Err(malformed()),
        };
        message = message.get(skip..).ok_or_else(malformed)?;
    }
    Ok(status)
}

fn status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

/// Healthy when the answer is HTTP 200, `grpc-status` 0 (from the trailers,
/// or the header of a trailers-only answer) and the message's status
/// SERVING; else why not.
pub fn verdict(
    http_status: u16,
    grpc_status: Option<&str>,
    grpc_message: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    if http_status != 200 {
        return Err(format!("status {http_status} is not 200"));
    }
    match grpc_status {
        None => return Err("the answer has no grpc-status".into()),
        Some("0") => {}
        Some(code) => {
            return Err(format!(
                "grpc-status {code}{}",
                grpc_message.map_or(String::new(), |m| format!(": {m}"))
            ))
        }
    }
    match serving_status(body)? {
        SERVING => Ok(()),
        other => Err(format!("the service is {}", status_name(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `HealthCheckResponse { status }` framed, as a server sends it.
    fn answer(message: &[u8]) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        framed
    }

    #[test]
    fn the_request_is_a_framed_health_check_request() {
        assert_eq!(&check_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &check_request("shop.Cart")[..],
            b"\0\0\0\0\x0b\x0a\x09shop.Cart"
        );
        let long = "s".repeat(200);
        let framed = check_request(&long);
        assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
        assert_eq!(framed.len(), 5 + 203);
    }

    #[test]
    fn serving_is_healthy_and_anything_else_says_why_not() {
        assert_eq!(verdict(200, Some("0"), None, &answer(&[0x08, 1])), Ok(()));
        assert_eq!(
            verdict(200, Some("0"), None, &answer(&[0x08, 2])),
            Err("the service is NOT_SERVING".into())
        );
        assert_eq!(
            verdict(200, Some("0"), None, &answer(&[])),
            Err("the service is UNKNOWN".into())
        );
        assert_eq!(
            verdict(200, Some("5"), Some("unknown service"), &[]),
            Err("grpc-status 5: unknown service".into())
        );
        assert_eq!(
            verdict(200, None, None, &answer(&[0x08, 1])),
            Err("the answer has no grpc-status".into())
        );
        assert_eq!(
            verdict(503, Some("0"), None, &answer(&[0x08, 1])),
            Err("status 503 is not 200".into())
        );
    }

    #[test]
    fn other_fields_are_skipped_and_bad_frames_refused() {
        // An unknown string field 2 and a fixed64 field 3 around status 1.
        let message = [0x12, 2, b'h', b'i', 0x08, 1, 0x19, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(verdict(200, Some("0"), None, &answer(&message)), Ok(()));
        assert!(verdict(200, Some("0"), None, &[]).is_err());
        assert!(verdict(200, Some("0"), None, &[1, 0, 0, 0, 0]).is_err());
        assert!(verdict(200, Some("0"), None, &[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(verdict(200, Some("0"), None, &answer(&[0x08])).is_err());
        assert!(verdict(200, Some("0"), None, &answer(&[0x12, 5, b'x'])).is_err());
        // A length near u64::MAX: refused, never an overflow.
        let huge = [
            0x12, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(verdict(200, Some("0"), None, &answer(&huge)).is_err());
    }
}
