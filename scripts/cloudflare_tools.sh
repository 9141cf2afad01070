#!/usr/bin/env bash
# Prepares the Cloudflare SDK test's tool (tests/cloudflare_api.rs):
#   target/cloudflare-venv  a Python virtualenv with the official `cloudflare` SDK from PyPI
#                           and its dependencies, pinned.
# Idempotent and cheap when done: a stamp file records the pinned versions installed, and
# nothing is fetched while it matches. Installs python3-venv with apt-get only when it is
# missing and we are root. Prints the venv's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pins (bump them together; the stamp makes every checkout reinstall). `cloudflare` is
# the SDK under test; the rest are its dependencies at the versions it was tested with.
PY_PINS=(
    "cloudflare==5.9.0"
    "pydantic==2.14.4"
    "pydantic_core==2.50.5"
    "httpx==0.29.0"
    "httpcore==1.0.9"
    "anyio==4.16.0"
    "typing_extensions==4.16.0"
)

target="${CARGO_TARGET_DIR:-target}"
venv="$target/cloudflare-venv"
stamp_text="${PY_PINS[*]}"

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "cloudflare_tools.sh: installing $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "cloudflare_tools.sh: please install: $* (the Cloudflare SDK test needs a Python venv)" >&2
        exit 1
    fi
}

# One run at a time (cargo may run test binaries in parallel; two would race on the venv).
mkdir -p "$target"
exec 9>"$target/cloudflare-tools.lock"
flock -w 600 9 || { echo "cloudflare_tools.sh: lock busy for 10 minutes" >&2; exit 1; }

if [ "$(cat "$target/cloudflare-tools.stamp" 2>/dev/null || true)" != "$stamp_text" ] ||
    [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PINS[@]}" >&2
    echo "$stamp_text" >"$target/cloudflare-tools.stamp"
fi
echo "$(cd "$venv/bin" && pwd)/python"
