//! The headless browser the page tests drive (`tests/status_page.rs`,
//! `tests/realtime.rs`): Chromium, which `scripts/test.sh` installs.

use std::path::PathBuf;

/// The Chromium binary on `PATH`.
pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return path;
        }
    }
    panic!("no chromium on PATH: `apt-get install -y chromium` (scripts/test.sh does it)");
}

/// The flags every headless run takes: no sandbox (root in CI), no GPU, no
/// shared-memory file system, nothing of a first run, no extensions, no
/// background traffic.
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
];
