#!/usr/bin/env bash
# Tether demo: three upstreams (web-1, web-2, web-3 on 127.0.0.1:9001-9003) behind
# tether on 127.0.0.1:8080 (conf/demo.yaml: pool `demo`, monitor GET /health every 1 s).
#
#   scripts/demo.sh           start everything, show the traffic, run until Ctrl-C
#   scripts/demo.sh --check   the same, unattended: kill web-2, check traffic moves, PASS/FAIL
#
# Every process started here is stopped on exit (tether with SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

LISTEN_HOST=127.0.0.1
LISTEN_PORT=8080
URL="http://$LISTEN_HOST:$LISTEN_PORT/"
NAMES=(web-1 web-2 web-3)
PORTS=(9001 9002 9003)
CONFIG=conf/demo.yaml

usage() {
    echo "usage: $0 [--check]"
    echo "  (no flag)  start the demo and keep it running until Ctrl-C"
    echo "  --check    run the failover check unattended; prints PASS or FAIL, exits 0 or 1"
}

CHECK=0
case "${1:-}" in
    "") ;;
    --check) CHECK=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
if [[ $# -gt 1 ]]; then
    usage >&2
    exit 2
fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LOG_DIR="$TARGET_DIR/demo-logs"
# DEMO_PROFILE=debug reuses the test build (scripts/test.sh does); default: release.
PROFILE="${DEMO_PROFILE:-release}"
case "$PROFILE" in
    release) PROFILE_FLAG=(--release) ;;
    debug) PROFILE_FLAG=() ;;
    *)
        echo "DEMO_PROFILE must be release or debug, got $PROFILE" >&2
        exit 2
        ;;
esac
TETHER_BIN="$TARGET_DIR/$PROFILE/tether"
UPSTREAM_BIN="$TARGET_DIR/$PROFILE/examples/demo_upstream"

TETHER_PID=""
declare -A UP_PID=()

# ---------------------------------------------------------------- clean-up

CLEANED=0
cleanup() {
    [[ $CLEANED == 1 ]] && return
    CLEANED=1
    echo
    echo "stopping the demo processes..."
    if [[ -n $TETHER_PID ]]; then
        kill -TERM "$TETHER_PID" 2>/dev/null || true
    fi
    local name
    for name in "${!UP_PID[@]}"; do
        kill -TERM "${UP_PID[$name]}" 2>/dev/null || true
    done
    # tether shuts down gracefully within conf/demo.yaml's grace period + shutdown timeout.
    if [[ -n $TETHER_PID ]]; then
        stop_and_reap "$TETHER_PID" 300
    fi
    for name in "${!UP_PID[@]}"; do
        stop_and_reap "${UP_PID[$name]}" 50
    done
    echo "stopped. logs: $LOG_DIR/"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# ---------------------------------------------------------------- helpers

# One request to the proxy; prints "<status> <body>" (status 000: no HTTP answer).
ask() {
    local out code body
    out=$(curl -s -m 5 -w '\n%{http_code}' "$URL" 2>/dev/null) || true
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    [[ $out == *$'\n'* ]] || body=""
    [[ -n $code ]] || code=000
    printf '%s %s\n' "$code" "${body//$'\n'/ }"
}

# ---------------------------------------------------------------- prerequisites

if ! command -v cmake >/dev/null 2>&1; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing cmake (needed to build Pingora's dependencies)..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake
    else
        echo "error: cmake is needed to build tether; install it first (e.g. sudo apt-get install cmake)" >&2
        exit 1
    fi
fi
for tool in cargo curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is needed; install it first" >&2
        exit 1
    fi
done
if [[ ! -f $CONFIG ]]; then
    echo "error: $CONFIG not found" >&2
    exit 1
fi
for port in "$LISTEN_PORT" "${PORTS[@]}"; do
    if port_open 127.0.0.1 "$port"; then
        echo "error: something already listens on 127.0.0.1:$port; stop it first" >&2
        exit 1
    fi
done

echo "building ($PROFILE)..."
cargo build "${PROFILE_FLAG[@]}" --bin tether --example demo_upstream
mkdir -p "$LOG_DIR"

# ---------------------------------------------------------------- start

for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]}
    port=${PORTS[$i]}
    "$UPSTREAM_BIN" "$name" "127.0.0.1:$port" >"$LOG_DIR/$name.log" 2>&1 &
    UP_PID[$name]=$!
done
for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]}
    wait_port 127.0.0.1 "${PORTS[$i]}" "${UP_PID[$name]}" "$LOG_DIR/$name.log"
    echo "upstream $name on 127.0.0.1:${PORTS[$i]} (pid ${UP_PID[$name]})"
done

RUST_LOG="${RUST_LOG:-info}" "$TETHER_BIN" -c "$CONFIG" >"$LOG_DIR/tether.log" 2>&1 &
TETHER_PID=$!
wait_port "$LISTEN_HOST" "$LISTEN_PORT" "$TETHER_PID" "$LOG_DIR/tether.log"
echo "tether on $LISTEN_HOST:$LISTEN_PORT (pid $TETHER_PID), config $CONFIG, log $LOG_DIR/tether.log"
echo

# ---------------------------------------------------------------- interactive demo

if [[ $CHECK == 0 ]]; then
    echo "Try it:"
    echo "    curl -s $URL"
    echo
    echo "Nine requests; each answer names the endpoint that served it:"
    for i in $(seq 1 9); do
        read -r code body < <(ask)
        printf '  request %d -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    done
    echo
    echo "Now take web-2 down (in another terminal):"
    echo "    kill ${UP_PID[web-2]}"
    echo "and send the requests again; within about a second (the monitor interval) web-2"
    echo "stops receiving traffic and no request fails:"
    echo "    for i in \$(seq 9); do curl -s $URL; echo; done"
    echo
    echo "Logs: $LOG_DIR/ (tether.log has one access-log line per request)."
    echo "Press Ctrl-C to stop everything."
    wait
    exit 0
fi

# ---------------------------------------------------------------- --check

FAILURES=()
fail() {
    FAILURES+=("$1")
    echo "  FAIL: $1"
}

echo "check 1: 9 requests are spread over the endpoints"
declare -A SEEN=()
for i in $(seq 1 9); do
    read -r code body < <(ask)
    printf '  request %d -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    [[ $code == 200 ]] || fail "request $i answered HTTP $code"
    if [[ -n $body ]]; then
        SEEN[$body]=1
    fi
done
if ((${#SEEN[@]} < 2)); then
    fail "only ${#SEEN[@]} distinct endpoint(s) answered: ${!SEEN[*]}"
fi

echo "check 2: kill web-2 (pid ${UP_PID[web-2]}); the monitor takes it out of rotation"
kill -TERM "${UP_PID[web-2]}"
stop_and_reap "${UP_PID[web-2]}" 50
unset 'UP_PID[web-2]'

# Poll (bounded, 10 s) until 20 consecutive requests avoid web-2 and get 200.
streak=0
sent=0
deadline=$((SECONDS + 10))
while ((streak < 20 && SECONDS < deadline)); do
    read -r code body < <(ask)
    sent=$((sent + 1))
    if [[ $code == 200 && $body != web-2 ]]; then
        streak=$((streak + 1))
    else
        streak=0
    fi
done
if ((streak < 20)); then
    fail "no run of 20 good requests within 10 s of killing web-2 ($sent sent, last: HTTP $code $body)"
else
    echo "  traffic settled after $sent requests (refused connections are retried on another endpoint)"
fi
# The monitor (interval 1 s) must notice too: poll its log line, bounded.
killed_at=$SECONDS
until grep -q "endpoint web-2 .* is unhealthy" "$LOG_DIR/tether.log" || ((SECONDS - killed_at > 5)); do
    sleep 0.1
done
if grep -q "endpoint web-2 .* is unhealthy" "$LOG_DIR/tether.log"; then
    echo "  monitor: $(grep -m1 "endpoint web-2 .* is unhealthy" "$LOG_DIR/tether.log" | sed 's/.*\] //')"
else
    fail "the monitor did not mark web-2 unhealthy within 5 s"
fi

echo "check 3: 30 more requests: all HTTP 200, none from web-2"
declare -A COUNT=()
for i in $(seq 1 30); do
    read -r code body < <(ask)
    key="HTTP $code ${body:-<no answer>}"
    COUNT[$key]=$((${COUNT[$key]:-0} + 1))
    if [[ $code != 200 ]]; then
        fail "request $i after the failover answered HTTP $code"
    elif [[ $body == web-2 ]]; then
        fail "request $i after the failover was served by web-2"
    fi
done
for key in "${!COUNT[@]}"; do
    echo "  $key: ${COUNT[$key]}"
done

echo
if ((${#FAILURES[@]} == 0)); then
    echo "PASS"
    exit 0
fi
echo "FAIL (${#FAILURES[@]} problem(s)); last lines of $LOG_DIR/tether.log:"
tail -n 20 "$LOG_DIR/tether.log" || true
exit 1
