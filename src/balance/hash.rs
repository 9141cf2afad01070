//! A fixed, documented, stable 64-bit hash.
//!
//! Every Tether instance that shares a configuration must make the same
//! hash-based choices (SPEC 7), today and after an upgrade, so this hash is
//! spelled out here rather than borrowed from `std` (`DefaultHasher` and
//! `RandomState` are seeded per process and may change between Rust releases).
//!
//! The algorithm, exactly:
//!
//! 1. **FNV-1a 64** over the input bytes: start from the offset basis
//!    `h = 0xcbf29ce484222325`; for each byte `b`, `h = (h ^ b) * 0x100000001b3`
//!    (multiplication wrapping modulo 2^64).
//! 2. **splitmix64's finaliser** on the result, to spread FNV's weak low bits
//!    over the whole word (all operations wrapping modulo 2^64):
//!    ```text
//!    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
//!    z = (z ^ (z >> 27)) * 0x94d049bb133111eb
//!    z =  z ^ (z >> 31)
//!    ```
//!
//! [`stable_hash_parts`] hashes a list of byte strings unambiguously: step 1
//! runs over, for each part in turn, the part's length as 8 little-endian bytes
//! followed by the part's bytes; step 2 is applied once at the end.

/// FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Feed `bytes` into an FNV-1a 64 state.
const fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// splitmix64's finaliser (a bijection on `u64`).
pub const fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a 64 over `bytes`, then splitmix64's finaliser (see the module docs).
pub const fn stable_hash(bytes: &[u8]) -> u64 {
    finalise(fnv1a(FNV_OFFSET, bytes))
}

/// Hash several byte strings as one unambiguous sequence: FNV-1a 64 over
/// `len(part) as u64` (8 bytes, little-endian) then `part`, for each part in
/// order, then splitmix64's finaliser. So `["ab", "c"]` and `["a", "bc"]`
/// differ, and `[]`, `[""]` and `["", ""]` all differ.
pub const fn stable_hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < parts.len() {
        let len = (parts[i].len() as u64).to_le_bytes();
        h = fnv1a(h, &len);
        h = fnv1a(h, parts[i]);
        i += 1;
    }
    finalise(h)
}

/// Uniform draws in `[0, 1)` from a seed — splitmix64's sequence — so the
/// same seed gives the same draws in every process and build.
pub fn seeded_draws(mut seed: u64) -> impl FnMut() -> f64 {
    move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (finalise(seed) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_core_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors (before the finaliser).
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn finaliser_matches_splitmix64() {
        // splitmix64 seeded with 0 yields 0xe220a8397b1dcdaf as its first output,
        // i.e. finalise(0 + 0x9e3779b97f4a7c15).
        assert_eq!(finalise(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_eq!(finalise(0), 0);
    }

    #[test]
    fn pinned_values() {
        // Computed once and hard-coded: changing the algorithm must fail here,
        // because it would move every hash-pinned session on upgrade.
        assert_eq!(stable_hash(b""), PINNED[0]);
        assert_eq!(stable_hash(b"a"), PINNED[1]);
        assert_eq!(stable_hash(b"10.0.0.1"), PINNED[2]);
        assert_eq!(stable_hash_parts(&[]), PINNED[3]);
        assert_eq!(
            stable_hash_parts(&[b"pool", b"web-1", &0u32.to_le_bytes()]),
            PINNED[4]
        );
    }

    /// Cross-checked against an independent Python implementation of the
    /// documented algorithm. (`stable_hash(b"")` equals `stable_hash_parts(&[])`:
    /// both are the finaliser applied to the bare offset basis.)
    const PINNED: [u64; 5] = [
        0xf52a_15e9_a9b5_e89b,
        0x02c0_bdbf_4814_20f8,
        0x7fb1_b600_f0f5_c6d3,
        0xf52a_15e9_a9b5_e89b,
        0x1011_4e15_41b4_51a1,
    ];

    #[test]
    fn parts_are_unambiguous() {
        assert_ne!(
            stable_hash_parts(&[b"ab", b"c"]),
            stable_hash_parts(&[b"a", b"bc"])
        );
        let empty: [&[u8]; 0] = [];
        let a = stable_hash_parts(&empty);
        let b = stable_hash_parts(&[b""]);
        let c = stable_hash_parts(&[b"", b""]);
        assert!(a != b && b != c && a != c);
        assert_ne!(stable_hash_parts(&[b"abc"]), stable_hash(b"abc"));
    }

    #[test]
    fn usable_in_const_context() {
        const H: u64 = stable_hash(b"const");
        assert_eq!(H, stable_hash(b"const"));
    }
}
