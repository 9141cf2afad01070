#!/usr/bin/env bash
# The test command: formatting, lints, then every test (unit and integration).
# Installs what the build needs (cmake, a C compiler) when it is missing and it can.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v curl >/dev/null 2>&1 || need+=(curl)  # scripts/demo.sh --check
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # tests/cluster.rs
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # tests/status_page.rs (headless)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # tests/sni.rs (openssl s_client -servername)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)  # tests/origins.rs (HTTPS origin)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "test.sh: please install: ${need[*]} (cmake and a C compiler build pingora's zlib; curl drives the demo check; redis-server serves tests/cluster.rs; chromium renders the status page in tests/status_page.rs; openssl s_client and curl see tests/sni.rs's certificates; nginx is the HTTPS origin of tests/origins.rs)" >&2
        exit 1
    fi
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== scripts/import_cycles.sh"
bash scripts/import_cycles.sh
echo "== cargo test"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --lib --bins --tests -- --test-threads "${TEST_THREADS:-2}" 2>&1 | tee "$results"
echo "== scripts/demo.sh --check (the demo, end to end, on the test build)"
DEMO_PROFILE=debug bash scripts/demo.sh --check
echo "== scripts/docs_check.sh (README and docs/ against the test build)"
TETHER_BIN="${CARGO_TARGET_DIR:-target}/debug/tether" bash scripts/docs_check.sh

# One closing line for the whole run: the sums of cargo's "test result" lines.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$results"
