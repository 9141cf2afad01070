#!/usr/bin/env bash
# Tether demo: three upstreams (web-1, web-2, web-3) behind tether with cookie affinity
# (conf/demo.yaml: pool `demo`, monitor GET /health every 1 s, drain 60 s, admin API and
# status page on its own port).
#
#   scripts/demo.sh           start everything, show a sticky session, print the commands for
#                             a drain and a failover, run until Ctrl-C
#   scripts/demo.sh --check   the same, unattended: a session stays put, then kill web-2 and
#                             check traffic (and the session) moves; PASS/FAIL
#
# Ports (flags win over the environment): --port N (DEMO_PORT, default 8080),
# --admin-port N (DEMO_ADMIN_PORT, 9180), --upstream-ports A,B,C (DEMO_UPSTREAM_PORTS,
# 9001,9002,9003). The demo writes its own copy of conf/demo.yaml into the log directory,
# with these ports and a fresh random admin token (from /dev/urandom, in a private temp
# directory, removed on exit); it prints how to use the token with curl and the status page.
#
# Every process started here is stopped on exit (tether with SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

usage() {
    echo "usage: $0 [--check] [--port N] [--admin-port N] [--upstream-ports A,B,C]"
    echo "  (no flag)  start the demo and keep it running until Ctrl-C"
    echo "  --check    run the sticky-session and failover checks unattended; prints PASS or FAIL, exits 0 or 1"
    echo "  ports also from DEMO_PORT, DEMO_ADMIN_PORT, DEMO_UPSTREAM_PORTS (defaults 8080, 9180, 9001,9002,9003)"
}

CHECK=0
LISTEN_PORT="${DEMO_PORT:-8080}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9180}"
UPSTREAM_PORTS="${DEMO_UPSTREAM_PORTS:-9001,9002,9003}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) CHECK=1 ;;
        --port) LISTEN_PORT="${2:?--port needs a number}"; shift ;;
        --admin-port) ADMIN_PORT="${2:?--admin-port needs a number}"; shift ;;
        --upstream-ports) UPSTREAM_PORTS="${2:?--upstream-ports needs A,B,C}"; shift ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
    shift
done
IFS=, read -r -a PORTS <<<"$UPSTREAM_PORTS"
for port in "$LISTEN_PORT" "$ADMIN_PORT" "${PORTS[@]}"; do
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        echo "error: bad port $port" >&2
        exit 2
    fi
done
if ((${#PORTS[@]} != 3)); then
    echo "error: --upstream-ports needs three ports, got $UPSTREAM_PORTS" >&2
    exit 2
fi

LISTEN_HOST=127.0.0.1
URL="http://$LISTEN_HOST:$LISTEN_PORT/"
ADMIN="http://$LISTEN_HOST:$ADMIN_PORT"
NAMES=(web-1 web-2 web-3)
CONFIG=conf/demo.yaml

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
TOKEN_DIR=""

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
    if [[ -n $TOKEN_DIR ]]; then
        rm -rf "$TOKEN_DIR"
    fi
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

# One request as a browser would make it, keeping the __cflb cookie in $JAR; prints
# "<status> <body>".
ask_session() {
    local out code body
    out=$(curl -s -m 5 -b "$JAR" -c "$JAR" -w '\n%{http_code}' "$URL" 2>/dev/null) || true
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
for port in "$LISTEN_PORT" "$ADMIN_PORT" "${PORTS[@]}"; do
    if port_open 127.0.0.1 "$port"; then
        echo "error: something already listens on 127.0.0.1:$port; stop it first" >&2
        exit 1
    fi
done

echo "building ($PROFILE)..."
cargo build "${PROFILE_FLAG[@]}" --bin tether --example demo_upstream
mkdir -p "$LOG_DIR"
JAR="$(cd "$LOG_DIR" && pwd)/session.jar"
rm -f "$JAR"
# The admin token: random, readable by this user only, gone when the demo stops.
TOKEN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tether-demo.XXXXXX")
TOKEN_FILE="$TOKEN_DIR/admin.token"
(
    umask 077
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE"
)
TOKEN=$(cat "$TOKEN_FILE")
PIDS_AT=/tmp/tether-demo
if [[ "$LISTEN_PORT $ADMIN_PORT ${PORTS[*]}" != "8080 9180 9001 9002 9003" ]]; then
    PIDS_AT=/tmp/tether-demo-$LISTEN_PORT
fi
sed -e "s/127.0.0.1:8080/127.0.0.1:$LISTEN_PORT/" -e "s/127.0.0.1:9180/127.0.0.1:$ADMIN_PORT/" \
    -e "s/127.0.0.1:9001/127.0.0.1:${PORTS[0]}/" -e "s/127.0.0.1:9002/127.0.0.1:${PORTS[1]}/" \
    -e "s/127.0.0.1:9003/127.0.0.1:${PORTS[2]}/" -e "s#/tmp/tether-demo#$PIDS_AT#g" \
    -e "s#token_file: conf/example-admin.token#token_file: \"$TOKEN_FILE\"#" \
    conf/demo.yaml >"$LOG_DIR/demo.yaml"
CONFIG="$LOG_DIR/demo.yaml"
grep -q "token_file: \"$TOKEN_FILE\"" "$CONFIG" || {
    echo "error: could not point $CONFIG at the demo's token" >&2
    exit 1
}

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
wait_port "$LISTEN_HOST" "$ADMIN_PORT" "$TETHER_PID" "$LOG_DIR/tether.log"
echo "tether on $LISTEN_HOST:$LISTEN_PORT (pid $TETHER_PID), config $CONFIG, log $LOG_DIR/tether.log"
echo "status page: $ADMIN/ (admin token in $TOKEN_FILE)"
echo

# ---------------------------------------------------------------- interactive demo

if [[ $CHECK == 0 ]]; then
    echo "Open the status page first: $ADMIN/#token=$TOKEN"
    echo "(or open $ADMIN/ and paste the token into \"Admin token\": $TOKEN)"
    echo "(every endpoint's health, weight, drain, requests; drain and enable from the page)"
    echo
    echo "Every admin API call needs the token (it is in $TOKEN_FILE until the demo stops):"
    echo "    TOKEN=\$(cat $TOKEN_FILE)"
    echo "    curl -s -H \"Authorization: Bearer \$TOKEN\" $ADMIN/v1/pools/demo"
    echo
    echo "A session stays put: the first answer sets the __cflb cookie, the next ones send it back."
    echo "    curl -s -b $JAR -c $JAR $URL"
    for i in $(seq 1 5); do
        read -r code body < <(ask_session)
        printf '  request %d with the cookie -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    done
    sticky=$body
    echo "Without the cookie each request is a new session, spread over the endpoints:"
    echo "    curl -s $URL"
    for i in $(seq 1 5); do
        read -r code body < <(ask)
        printf '  request %d without -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    done
    echo
    echo "A drain: disable $sticky. Its sessions stay for drain_duration (60 s), new ones avoid it:"
    echo "    curl -s -H \"Authorization: Bearer \$TOKEN\" -X PATCH $ADMIN/v1/pools/demo/endpoints/$sticky -d '{\"enabled\": false}'"
    echo "    curl -s -b $JAR -c $JAR $URL     # still $sticky, until the drain ends"
    echo "    curl -s $URL                     # never $sticky"
    echo "    curl -s -H \"Authorization: Bearer \$TOKEN\" -X PATCH $ADMIN/v1/pools/demo/endpoints/$sticky -d '{\"enabled\": true}'"
    echo
    echo "A failover: kill the session's endpoint; the monitor notices within a second, the"
    echo "session moves to another endpoint and stays there, and no request fails:"
    echo "    kill ${UP_PID[$sticky]:-<pid>}"
    echo "    for i in \$(seq 5); do curl -s -b $JAR -c $JAR $URL; echo; done"
    echo
    echo "Each answer's X-Tether-Decision header names the decision (new, hit, repin_drained, ...):"
    echo "    curl -s -o /dev/null -D - -b $JAR $URL | grep -i x-tether-decision"
    echo
    echo "Logs: $LOG_DIR/ (tether.log has one access-log line per request). Metrics (with the token):"
    echo "    curl -s -H \"Authorization: Bearer \$TOKEN\" $ADMIN/metrics"
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

echo "check 0: the admin API needs the demo's token"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$ADMIN/v1/pools/demo" 2>/dev/null) || true
[[ $code == 401 ]] || fail "GET /v1/pools/demo without the token answered HTTP $code, not 401"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$ADMIN/v1/pools/demo" 2>/dev/null) || true
[[ $code == 200 ]] || fail "GET /v1/pools/demo with the token answered HTTP $code, not 200"
echo "  without the token: 401, with it: 200"

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

echo "check 2: a session with its __cflb cookie stays on one endpoint"
declare -A STUCK=()
for i in $(seq 1 6); do
    read -r code body < <(ask_session)
    printf '  request %d with the cookie -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    [[ $code == 200 ]] || fail "session request $i answered HTTP $code"
    [[ -n $body ]] && STUCK[$body]=1
done
if ((${#STUCK[@]} != 1)); then
    fail "the session was served by ${#STUCK[@]} endpoints: ${!STUCK[*]}"
fi
grep -q "__cflb" "$JAR" 2>/dev/null || fail "no __cflb cookie was set"
VICTIM=${!STUCK[*]}
[[ -n ${UP_PID[$VICTIM]:-} ]] || VICTIM=web-2

echo "check 3: kill the session's endpoint, $VICTIM (pid ${UP_PID[$VICTIM]}); the monitor takes it out of rotation"
kill -TERM "${UP_PID[$VICTIM]}"
stop_and_reap "${UP_PID[$VICTIM]}" 50
unset "UP_PID[$VICTIM]"

# Poll (bounded, 10 s) until 20 consecutive requests avoid $VICTIM and get 200.
streak=0
sent=0
deadline=$((SECONDS + 10))
while ((streak < 20 && SECONDS < deadline)); do
    read -r code body < <(ask)
    sent=$((sent + 1))
    if [[ $code == 200 && $body != "$VICTIM" ]]; then
        streak=$((streak + 1))
    else
        streak=0
    fi
done
if ((streak < 20)); then
    fail "no run of 20 good requests within 10 s of killing $VICTIM ($sent sent, last: HTTP $code $body)"
else
    echo "  traffic settled after $sent requests (refused connections are retried on another endpoint)"
fi
# The monitor (interval 1 s) must notice too: poll its log line, bounded.
killed_at=$SECONDS
until grep -q "endpoint $VICTIM .* is unhealthy" "$LOG_DIR/tether.log" || ((SECONDS - killed_at > 5)); do
    sleep 0.1
done
if grep -q "endpoint $VICTIM .* is unhealthy" "$LOG_DIR/tether.log"; then
    echo "  monitor: $(grep -m1 "endpoint $VICTIM .* is unhealthy" "$LOG_DIR/tether.log" | sed 's/.*\] //')"
else
    fail "the monitor did not mark $VICTIM unhealthy within 5 s"
fi

echo "check 4: 30 more requests: all HTTP 200, none from $VICTIM"
declare -A COUNT=()
for i in $(seq 1 30); do
    read -r code body < <(ask)
    key="HTTP $code ${body:-<no answer>}"
    COUNT[$key]=$((${COUNT[$key]:-0} + 1))
    if [[ $code != 200 ]]; then
        fail "request $i after the failover answered HTTP $code"
    elif [[ $body == "$VICTIM" ]]; then
        fail "request $i after the failover was served by $VICTIM"
    fi
done
for key in "${!COUNT[@]}"; do
    echo "  $key: ${COUNT[$key]}"
done

echo "check 5: the session still answers, from a live endpoint, and stays there"
declare -A AFTER=()
for i in $(seq 1 4); do
    read -r code body < <(ask_session)
    printf '  session request %d -> %s (HTTP %s)\n' "$i" "${body:-<no answer>}" "$code"
    [[ $code == 200 && $body != "$VICTIM" ]] || fail "session request $i after the failover: HTTP $code $body"
    [[ -n $body ]] && AFTER[$body]=1
done
((${#AFTER[@]} == 1)) || fail "after the failover the session moved between ${!AFTER[*]}"

echo
if ((${#FAILURES[@]} == 0)); then
    echo "PASS"
    exit 0
fi
echo "FAIL (${#FAILURES[@]} problem(s)); last lines of $LOG_DIR/tether.log:"
tail -n 20 "$LOG_DIR/tether.log" || true
exit 1
