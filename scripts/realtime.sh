#!/usr/bin/env bash
# socket.io through Tether at size: three python-socketio processes (tests/realtime/app.py)
# behind one tether with `session_affinity: cookie`, driven by python-socketio's own client
# (tests/realtime/load.py). Prints failed/total for polling then websocket and for polling
# alone, each straight to one app (the client's own baseline) and through Tether, with Tether's
# tether_upstream_retries_total (when Tether has it) and its count of ERROR lines.
# docs/realtime.md has the figures.
#
#   scripts/realtime.sh [--sessions N] [--rounds K] [--concurrency C] [--bin PATH] [--keep]
#
#   --sessions N     sessions a run (default 1000)
#   --rounds K       echo round trips a session, before and after (default 5)
#   --concurrency C  sessions connecting at once (default 100)
#   --bin PATH       the tether binary (default target/debug/tether, built when missing)
#   --keep           keep the work directory (logs, reports) and print its path
#
# The tools (a venv with python-socketio, socket.io-client from npm) come from
# scripts/realtime_tools.sh. Every wait is bounded; every process started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SESSIONS=1000
ROUNDS=5
CONCURRENCY=100
BIN=
KEEP=
while [[ $# -gt 0 ]]; do
    case $1 in
    --sessions) SESSIONS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "realtime.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
if [ -z "$BIN" ]; then
    BIN="$target/debug/tether"
    [ -x "$BIN" ] || cargo build --bin tether
fi
PY=$(bash scripts/realtime_tools.sh | tail -n 1)
DIST="$target/realtime-npm/node_modules/socket.io-client/dist"

work=$(mktemp -d /tmp/tether-realtime.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        stop_and_reap "$pid" 30
    done
    if [ -n "$KEEP" ]; then
        echo "realtime.sh: logs and reports kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

endpoints=""
declare -A app_port
for name in a b c; do
    port=$(free_port)
    app_port[$name]=$port
    "$PY" tests/realtime/app.py --name "$name" --port "$port" --static "$DIST" >"$work/app-$name.log" 2>&1 &
    pids+=($!)
    wait_port 127.0.0.1 "$port" $! "$work/app-$name.log"
    endpoints+="        - { name: $name, address: \"127.0.0.1:$port\" }"$'\n'
done

listen=$(free_port)
admin=$(free_port)
cat >"$work/tether.yaml" <<EOF
version: 1
threads: 2
pid_file: $work/tether.pid
upgrade_sock: $work/upgrade.sock
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
tether:
  listeners:
    - address: 127.0.0.1:$listen
  admin:
    address: 127.0.0.1:$admin
  load_balancers:
    "*":
      default_pools: [p]
      session_affinity: cookie
      session_affinity_attributes: { zero_downtime_failover: sticky }
  pools:
    p:
      endpoints:
$endpoints
EOF
"$BIN" -c "$work/tether.yaml" >"$work/tether.out" 2>"$work/tether.err" &
tether_pid=$!
pids+=($tether_pid)
wait_port 127.0.0.1 "$listen" "$tether_pid" "$work/tether.err"

retries() {
    local text
    text=$(curl -s --max-time 5 "http://127.0.0.1:$admin/metrics" || true)
    if grep -q '^tether_upstream_retries_total' <<<"$text"; then
        grep '^tether_upstream_retries_total' <<<"$text" | awk '{ s += $NF } END { print s }'
    else
        echo "n/a (this Tether has no tether_upstream_retries_total)"
    fi
}

# run LABEL URL [load.py args]: one load.py run; prints its line and keeps its report.
run() {
    local label=$1 url=$2
    shift 2
    local report="$work/report-${label// /-}.json"
    local errors_before
    errors_before=$(grep -c ' ERROR ' "$work/tether.err" || true)
    timeout 900 "$PY" tests/realtime/load.py --url "$url" --sessions "$SESSIONS" --rounds "$ROUNDS" \
        --concurrency "$CONCURRENCY" "$@" >"$work/load.out" 2>"$work/load.err" || {
        echo "realtime.sh: load.py failed on '$label':" >&2
        tail -n 20 "$work/load.err" >&2
        exit 1
    }
    tail -n 1 "$work/load.out" >"$report"
    local errors_after
    errors_after=$(grep -c ' ERROR ' "$work/tether.err" || true)
    "$PY" - "$report" "$label" "$((errors_after - errors_before))" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("%-34s failed %d/%d  websocket %d  handshakes %d  http 5xx %d  %.1f s  tether ERROR lines %s"
      % (sys.argv[2], r["failed"], r["total"], r["websocket"], r["handshakes"], r["http_5xx"],
         r["seconds"], sys.argv[3]))
for why, n in sorted(r["errors"].items(), key=lambda kv: -kv[1]):
    print("    %5d  %s" % (n, why))
EOF
}

echo "realtime.sh: $SESSIONS sessions a run, $ROUNDS round trips before and after, $CONCURRENCY at once; tether $BIN"
run "straight to app a (baseline)" "http://127.0.0.1:${app_port[a]}"
run "tether, polling then websocket" "http://127.0.0.1:$listen"
run "straight to app a, polling only" "http://127.0.0.1:${app_port[a]}" --transports polling
run "tether, polling only" "http://127.0.0.1:$listen" --transports polling
echo "tether_upstream_retries_total: $(retries)"
