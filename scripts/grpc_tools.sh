#!/usr/bin/env bash
# Prepares the gRPC test tools (tests/grpc.rs): target/grpc-venv, a Python virtualenv
# with grpcio (server and client) and grpcio-health-checking (the grpc.health.v1
# servicer), pinned, with protobuf, which the health service's messages need.
# Idempotent and cheap when done: a stamp file records the pinned versions installed,
# and nothing is fetched while it matches. Installs python3-venv with apt-get only
# when it is missing and we are root. Prints the venv's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pins (bump them together; the stamp makes every checkout reinstall).
PY_PINS=(
    "grpcio==1.85.1"
    "grpcio-health-checking==1.85.1"
    "protobuf==7.36.2"
    "typing_extensions==4.16.0"
)

target="${CARGO_TARGET_DIR:-target}"
venv="$target/grpc-venv"
stamp_text="${PY_PINS[*]}"

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "grpc_tools.sh: installing $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "grpc_tools.sh: please install: $* (the gRPC tests need a Python venv)" >&2
        exit 1
    fi
}

# One run at a time (cargo runs test binaries in parallel; two would race on the venv).
mkdir -p "$target"
exec 9>"$target/grpc-tools.lock"
flock -w 600 9 || { echo "grpc_tools.sh: lock busy for 10 minutes" >&2; exit 1; }

if [ "$(cat "$target/grpc-tools.stamp" 2>/dev/null || true)" != "$stamp_text" ] ||
    [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PINS[@]}" >&2
    echo "$stamp_text" >"$target/grpc-tools.stamp"
fi
echo "$(cd "$venv/bin" && pwd)/python"
