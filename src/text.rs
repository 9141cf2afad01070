//! Numbers and addresses written into a `String` without `core::fmt`'s
//! machinery, for text built on every request (the access-log line,
//! `X-Forwarded-For`, the request id): `format!` showed in the profile.

use std::fmt::Write as _;
use std::net::IpAddr;

/// `n` in decimal, zero-padded to at least `width` digits (`{n:0width$}`).
pub fn push_decimal(mut n: u64, width: usize, out: &mut String) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = start.min(digits.len().saturating_sub(width));
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// An IPv4 address by its octets; IPv6 by its standard text form.
pub fn push_ip(ip: IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(u64::from(octet), 1, out);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `n` as 32 lower-case hex digits, zero-padded (`{:032x}`).
pub fn push_hex(n: u128, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        out.push(char::from(DIGITS[((n >> (shift * 4)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_as_core_fmt_writes_them() {
        for (n, width) in [
            (0u64, 1),
            (7, 3),
            (42, 1),
            (999, 3),
            (1000, 3),
            (123, 6),
            (u64::MAX, 1),
        ] {
            let mut ours = String::new();
            push_decimal(n, width, &mut ours);
            assert_eq!(ours, format!("{n:0width$}"));
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.3.4",
            "::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut ours = String::new();
            push_ip(ip, &mut ours);
            assert_eq!(ours, ip.to_string());
        }
        for n in [
            0u128,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let mut ours = String::new();
            push_hex(n, &mut ours);
            assert_eq!(ours, format!("{n:032x}"));
        }
    }
}
