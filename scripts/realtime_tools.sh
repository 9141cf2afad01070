#!/usr/bin/env bash
# Prepares the real-time test tools (tests/realtime.rs, scripts/realtime.sh):
#   target/realtime-venv  a Python virtualenv with python-socketio, its asyncio client
#                         (aiohttp) and the server's dependencies, pinned;
#   target/realtime-npm   socket.io-client from npm, pinned (the browser page's script).
# Idempotent and cheap when done: a stamp file records the pinned versions installed,
# and nothing is fetched while it matches. Installs python3-venv / npm with apt-get
# only when they are missing and we are root. Prints the venv's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pins (bump them together; the stamp makes every checkout reinstall).
PY_PINS=(
    "python-socketio==5.18.1"
    "python-engineio==4.15.1"
    "aiohttp==3.14.5"
    "bidict==0.24.1"
    "simple-websocket==1.1.0"
)
NPM_PINS=("socket.io-client@4.8.4")

target="${CARGO_TARGET_DIR:-target}"
venv="$target/realtime-venv"
npm_dir="$target/realtime-npm"
stamp_text="${PY_PINS[*]} | ${NPM_PINS[*]}"

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "realtime_tools.sh: installing $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "realtime_tools.sh: please install: $* (the real-time tests need a Python venv and npm)" >&2
        exit 1
    fi
}

# One run at a time (cargo runs test binaries in parallel; two would race on the venv).
mkdir -p "$target"
exec 9>"$target/realtime-tools.lock"
flock -w 600 9 || { echo "realtime_tools.sh: lock busy for 10 minutes" >&2; exit 1; }

if [ "$(cat "$target/realtime-tools.stamp" 2>/dev/null || true)" != "$stamp_text" ] ||
    [ ! -x "$venv/bin/python" ] ||
    [ ! -f "$npm_dir/node_modules/socket.io-client/dist/socket.io.min.js" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    command -v npm >/dev/null 2>&1 || apt_install npm
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PINS[@]}" >&2
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" "${NPM_PINS[@]}" >&2
    echo "$stamp_text" >"$target/realtime-tools.stamp"
fi
echo "$(cd "$venv/bin" && pwd)/python"
