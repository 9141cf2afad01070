//! The session table's memory per entry at 1,000,000 entries (target ≤ 150
//! bytes), from the process's resident set before and after filling it.
//! `cargo bench --bench table_memory`.

use tether::affinity::table::{SessionTable, TablePin};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    // `cargo bench` passes `--bench`; any other run (e.g. `cargo test --benches`) is a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = if full { 1_000_000 } else { 10_000 };
    let before = rss_bytes();
    let table = SessionTable::new(n as usize);
    let mut key = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..n {
        key = key
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        table.put(
            key,
            TablePin {
                pool: 0,
                endpoint: (i % 7) as u32,
            },
            1,
        );
    }
    let after = rss_bytes();
    let entries = table.len() as u64;
    let per_entry = (after.saturating_sub(before)) as f64 / entries.max(1) as f64;
    println!("session table: {entries} entries, {per_entry:.1} bytes per entry (RSS delta; target <= 150)");
}
