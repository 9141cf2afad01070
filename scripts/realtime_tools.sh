#!/usr/bin/env bash
# Prepares the real-time test tools (tests/realtime.rs, scripts/realtime.sh):
#   target/realtime-venv  a Python virtualenv with python-socketio, its asyncio client
#                         (aiohttp) and the server's dependencies, pinned
#                         (scripts/python_tools.sh);
#   target/realtime-npm   socket.io-client from npm, pinned (the browser page's script).
# Installs npm with apt-get only when it is missing and we are root. Prints the venv's
# python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_tools.sh

# The pins (bump them together; the stamp makes every checkout reinstall).
NPM_PINS=("socket.io-client@4.8.4")
EXTRA_STAMP="${NPM_PINS[*]}"
npm_dir="${CARGO_TARGET_DIR:-target}/realtime-npm"

extra_ready() {
    [ -f "$npm_dir/node_modules/socket.io-client/dist/socket.io.min.js" ]
}

extra_install() {
    command -v npm >/dev/null 2>&1 ||
        apt_install realtime "the real-time tests need npm" npm
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" "${NPM_PINS[@]}" >&2
}

python_tools realtime "the real-time tests need a Python venv" \
    "python-socketio==5.18.1" \
    "python-engineio==4.15.1" \
    "aiohttp==3.14.5" \
    "bidict==0.24.1" \
    "simple-websocket==1.1.0"
