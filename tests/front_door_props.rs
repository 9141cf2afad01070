//! Property tests of the front door's own handling of raw client bytes
//! (issue 10, item 6): arbitrary request bytes, cut into arbitrary reads,
//! driven through the header scanner, the request-target and `Host` rules,
//! host normalisation, `__cflb` stripping and `X-Forwarded-For`. Nothing may
//! panic, and the scanner must find the same header end however the bytes
//! arrive, and refuse a request line (a target with a byte no target may
//! hold) however it arrives. (The proxy path itself is driven byte by byte in
//! tests/front_door.rs; `fuzz/` has the same for cargo-fuzz.)

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use tether::affinity::cookie_header::{cflb_values, without_cflb};
use tether::front_door::scan::{response_status, HeaderScan, Scanned};
use tether::route::request::{forwarded_for, http1_authority, normalize_host};

/// Request-ish bytes: mostly printable, with the separators that matter.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"Host: ".to_vec()),
        Just(b"GET ".to_vec()),
        Just(b"http://".to_vec()),
        Just(b"HTTP/1.1".to_vec()),
        Just(b"__cflb=".to_vec()),
        Just(b";".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
        "[a-zA-Z0-9./:?*@\\[\\]%-]{0,12}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Where the whole-buffer scan ends the header (`Ok`), or that it refuses
/// the request line (`Err`); `None`: neither yet.
fn end_at_once(bytes: &[u8]) -> Option<Result<usize, ()>> {
    match HeaderScan::default().feed(bytes) {
        Scanned::Complete { bytes, .. } => Some(Ok(bytes)),
        Scanned::InvalidRequestLine => Some(Err(())),
        Scanned::Partial { .. } => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_header_end_does_not_depend_on_how_the_bytes_arrive(
        bytes in request_bytes(),
        cuts in prop::collection::vec(1usize..9, 0..60),
    ) {
        let mut scan = HeaderScan::default();
        let (mut at, mut found) = (0usize, None);
        for cut in cuts.iter().copied().chain(std::iter::once(usize::MAX)) {
            if at >= bytes.len() {
                break;
            }
            let end = bytes.len().min(at.saturating_add(cut));
            match scan.feed(&bytes[at..end]) {
                Scanned::Complete { bytes: header, consumed } => {
                    prop_assert!(consumed <= end - at);
                    prop_assert_eq!(header, at + consumed);
                    found = Some(Ok(header));
                    break;
                }
                Scanned::InvalidRequestLine => {
                    found = Some(Err(()));
                    break;
                }
                Scanned::Partial { .. } => {}
            }
            at = end;
        }
        prop_assert_eq!(found, end_at_once(&bytes));
        let line = scan.request_line();
        prop_assert!(!line.method.contains(|c: char| c.is_control()));
        prop_assert!(!line.target.contains(|c: char| c.is_control()));
        let _ = response_status(&bytes);
    }

    #[test]
    fn targets_hosts_and_cookies_never_panic(
        target in request_bytes(),
        hosts in prop::collection::vec(request_bytes(), 0..3),
        http11 in any::<bool>(),
        cookies in prop::collection::vec(request_bytes(), 0..3),
        prior in proptest::option::of("[0-9a-f:., ]{0,40}"),
    ) {
        if let Ok(authority) = http1_authority(&target, http11, hosts.iter().map(Vec::as_slice)) {
            let host = normalize_host(authority.host());
            prop_assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
        }
        let mut headers = HeaderMap::new();
        for c in &cookies {
            if let Ok(v) = HeaderValue::from_bytes(c) {
                headers.append(http::header::COOKIE, v);
            }
        }
        let seen: Vec<String> = cflb_values(&headers).map(str::to_string).collect();
        for v in headers.get_all(http::header::COOKIE) {
            if let Some(kept) = without_cflb(v) {
                let mut rest = HeaderMap::new();
                rest.append(http::header::COOKIE, kept);
                prop_assert_eq!(cflb_values(&rest).count(), 0, "a __cflb survived stripping");
            }
        }
        let _ = seen;
        let _ = forwarded_for(prior.as_deref(), Some([127, 0, 0, 1].into()));
    }
}
