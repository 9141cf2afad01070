#!/usr/bin/env bash
# Tether's faults under real load, for a human (tests/faults.rs checks the same in CI):
#
#   1. endpoint `a` of three is killed (SIGKILL) while six cookie sessions, two pinned to
#      each endpoint, send requests in curl loops; once per zero_downtime_failover mode
#      (none, temporary, sticky). Counted per request, by when it started: before the
#      kill, in flight at the kill, after the kill but before the monitor noticed, after.
#   2. an endpoint that accepts connections and never answers (upstream_timeouts.read
#      0.5 s): requests to it get 504 while another load balancer takes load (wrk, or a
#      curl loop when wrk is missing).
#   3. a flood of distinct X-User session keys (session_affinity: header,
#      max_sessions 1000): tether_sessions and the process's VmRSS after 2,000 keys and
#      after the flood (wrk for 10 s, or 20,000 keys with curl).
#
#   scripts/faults.sh            build (release) and run all three; prints a table
#   FAULTS_PROFILE=debug scripts/faults.sh   use the debug build instead
#
# Exit status 0 when every promise held, 1 otherwise. Every process started here is
# stopped on exit; every loop is bounded in time. Only 127.0.0.1 is used; ports are
# picked free at random. Logs: target/faults-logs/ (or $CARGO_TARGET_DIR/faults-logs/).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

case "${1:-}" in
    "") ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0   (no arguments; see --help)" >&2
        exit 2
        ;;
esac

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PROFILE="${FAULTS_PROFILE:-release}"
case "$PROFILE" in
    release) PROFILE_FLAG=(--release) ;;
    debug) PROFILE_FLAG=() ;;
    *)
        echo "FAULTS_PROFILE must be release or debug, got $PROFILE" >&2
        exit 2
        ;;
esac
TETHER_BIN="$TARGET_DIR/$PROFILE/tether"
UPSTREAM_BIN="$TARGET_DIR/$PROFILE/examples/demo_upstream"
LOG_DIR="$TARGET_DIR/faults-logs"

SESSIONS_PER_ENDPOINT=2   # scenario 1: cookie sessions pinned to each of a, b, c
WARM_SECONDS=2            # scenario 1: load before the kill
AFTER_SECONDS=2           # scenario 1: load after the monitor noticed
LOOP_LIMIT=40             # any load loop stops after this many seconds, whatever happens
HOLE_CLIENTS=8            # scenario 2: concurrent requests to the black hole
HOLE_SECONDS=3
FLOOD_FIRST=2000          # scenario 3: keys before the first RSS reading
FLOOD_SECONDS=10          # scenario 3 with wrk
FLOOD_CURL=20000          # scenario 3 without wrk: keys in total
MAX_SESSIONS=1000
MAX_GROWTH_KIB=$((16 * 1024))

# ---------------------------------------------------------------- processes

PIDS=()   # everything started in the background, stopped by cleanup

# Removes pids (already reaped) from PIDS, so nothing signals them again.
forget_pids() {
    local keep=() p
    for p in "${PIDS[@]}"; do
        [[ " $* " == *" $p "* ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# Stops the given pids (TERM, bounded wait, KILL) and forgets them.
stop_pids() {
    local pid
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        stop_and_reap "$pid" 50
    done
    forget_pids "$@"
}

CLEANED=0
cleanup() {
    [[ $CLEANED == 1 ]] && return
    CLEANED=1
    if ((${#PIDS[@]} > 0)); then
        stop_pids "${PIDS[@]}"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# ---------------------------------------------------------------- helpers

now_us() { echo "${EPOCHREALTIME/./}"; }

USED_PORTS=" "
# Listening ports come from below the kernel's ephemeral range, so that no client
# connection (there are many here) holds one of them.
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LOW=32768
PORT_LOW=20000
PORT_SPAN=$((EPHEMERAL_LOW - PORT_LOW))
if ((PORT_SPAN < 1000)); then
    PORT_LOW=$((EPHEMERAL_LOW > 11000 ? EPHEMERAL_LOW - 10000 : 1024))
    PORT_SPAN=$((EPHEMERAL_LOW - PORT_LOW))
fi
if ((PORT_SPAN < 1000)); then
    PORT_LOW=20000
    PORT_SPAN=30000
fi
# A port free on 127.0.0.1 a moment ago, not handed out before by this script.
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((PORT_LOW + RANDOM % PORT_SPAN))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_open 127.0.0.1 "$p" && continue
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    echo "error: no free port found" >&2
    return 1
}

# start_upstream NAME PORT LOG: a demo upstream in the background; sets LAST_PID.
start_upstream() {
    "$UPSTREAM_BIN" "$1" "127.0.0.1:$2" >"$3" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port 127.0.0.1 "$2" "$LAST_PID" "$3"
}

# pingora_keys DIR: the top of a config file.
pingora_keys() {
    cat <<EOF
version: 1
threads: 2
pid_file: "$1/tether.pid"
upgrade_sock: "$1/upgrade.sock"
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
EOF
}

# start_tether CONFIG PORT LOG: validates, starts tether in the background; sets LAST_PID.
start_tether() {
    local conf=$1 port=$2 log=$3
    if ! "$TETHER_BIN" -t -c "$conf" >"$log.check" 2>&1; then
        echo "error: $conf does not validate:" >&2
        cat "$log.check" >&2
        return 1
    fi
    RUST_LOG="${RUST_LOG:-info,access=warn}" "$TETHER_BIN" -c "$conf" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port 127.0.0.1 "$port" "$LAST_PID" "$log"
}

vmrss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# metric TEXT NAME: the value of an unlabelled series.
metric() { awk -v n="$2" '$1 == n { print $2 }' <<<"$1"; }

PROBLEMS=()
problem() {
    PROBLEMS+=("$1")
    echo "  UNEXPECTED: $1"
}

# ---------------------------------------------------------------- prerequisites

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if ((${#need[@]} > 0)); then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need[*]}..."
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || true
    fi
fi
for tool in cargo curl perl cmake; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is needed; install it first" >&2
        exit 1
    fi
done
HAVE_WRK=0
if command -v wrk >/dev/null 2>&1; then
    HAVE_WRK=1
else
    echo "note: wrk is not installed (and could not be): curl loops drive the load instead"
fi
CURL_VERSION=$(curl --version | awk 'NR == 1 { print $2 }')
if [[ "$(printf '%s\n' 7.84.0 "$CURL_VERSION" | sort -V | head -n1)" != 7.84.0 ]]; then
    echo "error: curl $CURL_VERSION is too old: 7.84 or later is needed (-w %header{...})" >&2
    exit 1
fi

echo "building ($PROFILE)..."
cargo build "${PROFILE_FLAG[@]}" --bin tether --example demo_upstream
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
LOG_DIR=$(cd "$LOG_DIR" && pwd)
head -c 32 /dev/urandom | base64 >"$LOG_DIR/cookie.keys"

# ================================================================ 1. endpoint killed

# session_loop URL COOKIE OUT STOPFILE DEADLINE_US: one browser-like session: sends its
# __cflb cookie, takes every new one, writes "start_us end_us status decision" per request.
session_loop() {
    local url=$1 cookie=$2 out=$3 stopfile=$4 deadline=$5 t0 t1 line code decision
    local re='__cflb=([^;[:space:]]+)'
    while [[ ! -e $stopfile ]] && (($(now_us) < deadline)); do
        t0=$(now_us)
        line=$(curl -s -o /dev/null -m 5 -H "Host: x" -b "__cflb=$cookie" \
            -w '%{http_code} %header{x-tether-decision} %header{set-cookie}' "$url" 2>/dev/null) || true
        t1=$(now_us)
        read -r code decision _ <<<"$line" || true
        if [[ $line =~ $re ]]; then
            cookie=${BASH_REMATCH[1]}
        fi
        decision=${decision##*/}
        echo "$t0 $t1 ${code:-000} ${decision:--}" >>"$out"
    done
}

# analyse KILL_BEGIN KILL_END DETECT FILES...: one line of counts (see the END block).
analyse() {
    awk -v kb="$1" -v ke="$2" -v det="$3" '
        FNR == 1 { pinned = FILENAME; sub(/\.log$/, "", pinned); sub(/.*-/, "", pinned) }
        {
            total++; err = ($3 != "200")
            if (pinned != "a") { bc++; bce += err; next }
            if ($4 ~ /^failover_/) fo++
            if ($2 < kb) { pre++; pree += err }
            else if ($1 < ke) { inf++; infe += err }
            else if ($1 < det) { bd++; bde += err }
            else { ad++; ade += err }
        }
        END { printf "%d %d %d %d %d %d %d %d %d %d %d %d\n", total, pre, pree, inf, infe, bd, bde, fo, ad, ade, bc, bce }
    ' "${@:4}"
}

KILL_ROWS=()
kill_scenario() {
    local mode=$1 dir="$LOG_DIR/kill-$mode"
    mkdir -p "$dir"
    echo
    echo "== 1/$mode: endpoint a killed mid-load, zero_downtime_failover: $mode"
    local pa pb pc pt
    pa=$(free_port) && pb=$(free_port) && pc=$(free_port) && pt=$(free_port)
    declare -A up_pid=()
    local name port
    for name in a b c; do
        case $name in a) port=$pa ;; b) port=$pb ;; c) port=$pc ;; esac
        start_upstream "$name" "$port" "$dir/upstream-$name.log"
        up_pid[$name]=$LAST_PID
    done
    {
        pingora_keys "$dir"
        cat <<EOF
tether:
  listeners:
    - address: "127.0.0.1:$pt"
  decision_header: true
  cookie_keys_file: "$LOG_DIR/cookie.keys"
  load_balancers:
    "*":
      default_pools: [web]
      session_affinity: cookie
      session_affinity_attributes: {zero_downtime_failover: $mode}
  pools:
    web:
      monitor: health
      endpoints:
        - {name: a, address: "127.0.0.1:$pa"}
        - {name: b, address: "127.0.0.1:$pb"}
        - {name: c, address: "127.0.0.1:$pc"}
  monitors:
    health: {type: http, path: /health, interval: 1, timeout: 0.5, retries: 0, consecutive_down: 2}
EOF
    } >"$dir/tether.yaml"
    start_tether "$dir/tether.yaml" "$pt" "$dir/tether.log"
    local tether_pid=$LAST_PID url="http://127.0.0.1:$pt/"

    # Cookies: cookieless requests until each endpoint has its sessions (at most 100).
    declare -A have=([a]=0 [b]=0 [c]=0)
    local cookies=() pins=() i line endpoint cookie
    local re='^200 [^/]*/[^/]*/([^/]*)/new __cflb=([^;]+)'
    for ((i = 0; i < 100 && ${#cookies[@]} < 3 * SESSIONS_PER_ENDPOINT; i++)); do
        line=$(curl -s -o /dev/null -m 5 -H "Host: x" \
            -w '%{http_code} %header{x-tether-decision} %header{set-cookie}' "$url" 2>/dev/null) || true
        [[ $line =~ $re ]] || continue
        endpoint=${BASH_REMATCH[1]}
        cookie=${BASH_REMATCH[2]}
        if ((${have[$endpoint]:-0} < SESSIONS_PER_ENDPOINT)); then
            have[$endpoint]=$((${have[$endpoint]:-0} + 1))
            cookies+=("$cookie")
            pins+=("$endpoint")
        fi
    done
    if ((${#cookies[@]} < 3 * SESSIONS_PER_ENDPOINT)); then
        echo "error: could not get $SESSIONS_PER_ENDPOINT sessions on each endpoint: ${have[*]}" >&2
        return 1
    fi

    local stopfile="$dir/stop" deadline loops=()
    deadline=$(($(now_us) + LOOP_LIMIT * 1000000))
    for i in "${!cookies[@]}"; do
        session_loop "$url" "${cookies[$i]}" "$dir/session-$i-${pins[$i]}.log" "$stopfile" "$deadline" &
        loops+=("$!")
        PIDS+=("$!")
    done
    echo "  ${#loops[@]} sessions (${SESSIONS_PER_ENDPOINT} pinned to each of a, b, c) send requests; ${WARM_SECONDS} s of load, then SIGKILL to a"
    sleep "$WARM_SECONDS"

    local kill_begin kill_end detect=""
    kill_begin=$(now_us)
    kill -KILL "${up_pid[a]}"
    wait "${up_pid[a]}" 2>/dev/null || true
    kill_end=$(now_us)
    forget_pids "${up_pid[a]}"
    # The monitor's verdict, polled (bounded, 10 s).
    for ((i = 0; i < 200; i++)); do
        if grep -q "endpoint a (.*) is unhealthy" "$dir/tether.log"; then
            detect=$(now_us)
            break
        fi
        sleep 0.05
    done
    if [[ -z $detect ]]; then
        problem "$mode: the monitor did not mark a unhealthy within 10 s"
        detect=$(now_us)
    fi
    sleep "$AFTER_SECONDS"
    touch "$stopfile"
    for i in "${loops[@]}"; do
        stop_and_reap "$i" 100
    done
    forget_pids "${loops[@]}"
    stop_pids "$tether_pid" "${up_pid[b]}" "${up_pid[c]}"

    local total pre pree inf infe bd bde fo ad ade bc bce noticed
    read -r total pre pree inf infe bd bde fo ad ade bc bce < <(analyse "$kill_begin" "$kill_end" "$detect" "$dir"/session-*.log)
    noticed=$(awk -v a="$kill_end" -v b="$detect" 'BEGIN { printf "%.2f s", (b - a) / 1e6 }')
    echo "  monitor noticed after $noticed; a-pinned: before the kill $pree/$pre errors, in flight $infe/$inf, before detection $bde/$bd, after detection $ade/$ad, failover decisions $fo; b/c-pinned $bce/$bc"
    ((pre > 0 && bd > 0 && ad > 0)) || problem "$mode: a window without requests (before kill $pre, before detection $bd, after $ad)"
    ((pree == 0)) || problem "$mode: $pree errors before the kill"
    ((bce == 0)) || problem "$mode: $bce errors for sessions pinned to b or c"
    ((ade == 0)) || problem "$mode: $ade errors after the monitor noticed"
    case $mode in
        none) ((bde > 0)) || problem "none: no 502 between the kill and the detection" ;;
        *) ((bde == 0)) || problem "$mode: $bde errors between the kill and the detection" ;;
    esac
    KILL_ROWS+=("$(printf '%-10s %9d %9s %14s %18s %10d %17s %12s' "$mode" "$total" "$noticed" \
        "$infe/$inf" "$bde/$bd" "$fo" "$ade/$ad" "$bce/$bc")")
}

for mode in none temporary sticky; do
    kill_scenario "$mode"
done

# ================================================================ 2. black hole

echo
echo "== 2: an endpoint that accepts and never answers (read timeout 0.5 s)"
dir="$LOG_DIR/black-hole"
mkdir -p "$dir"
ph=$(free_port)
po=$(free_port)
pt=$(free_port)
# Accepts, holds every connection, never reads or answers; gives up after 120 s.
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$ARGV[0]", Listen => 128, ReuseAddr => 1)
        or die "black hole: $!\n";
    $SIG{ALRM} = sub { exit 0 };
    alarm 120;
    my @held;
    while (my $c = $s->accept) { push @held, $c }
' "$ph" >"$dir/black-hole.log" 2>&1 &
hole_pid=$!
PIDS+=("$hole_pid")
wait_port 127.0.0.1 "$ph" "$hole_pid" "$dir/black-hole.log"
start_upstream ok "$po" "$dir/upstream-ok.log"
ok_pid=$LAST_PID
{
    pingora_keys "$dir"
    cat <<EOF
tether:
  listeners:
    - address: "127.0.0.1:$pt"
  upstream_timeouts: {read: 0.5}
  load_balancers:
    hole.test: {default_pools: [hole]}
    ok.test: {default_pools: [ok]}
  pools:
    hole: {endpoints: [{name: hole, address: "127.0.0.1:$ph"}]}
    ok: {endpoints: [{name: ok, address: "127.0.0.1:$po"}]}
EOF
} >"$dir/tether.yaml"
start_tether "$dir/tether.yaml" "$pt" "$dir/tether.log"
tether_pid=$LAST_PID
url="http://127.0.0.1:$pt/"

hole_loops=()
hole_deadline=$(($(now_us) + HOLE_SECONDS * 1000000))
for ((i = 0; i < HOLE_CLIENTS; i++)); do
    (
        while (($(now_us) < hole_deadline)); do
            curl -s -o /dev/null -m 10 -H "Host: hole.test" -w '%{http_code} %{time_total}\n' "$url" 2>/dev/null || true
        done
    ) >"$dir/hole-$i.log" &
    hole_loops+=("$!")
    PIDS+=("$!")
done
sleep 0.3
echo "  $HOLE_CLIENTS clients keep requests pending on the black hole for ${HOLE_SECONDS} s; meanwhile load on ok.test"
healthy_requests=0
healthy_bad=0
healthy_p99="-"
if ((HAVE_WRK)); then
    wrk -t2 -c8 -d"$((HOLE_SECONDS - 1))s" --timeout 5s --latency -H "Host: ok.test" "$url" >"$dir/wrk.log" 2>&1 &
    wrk_pid=$!
    PIDS+=("$wrk_pid")
    stop_and_reap "$wrk_pid" $((10 * (HOLE_SECONDS + 10)))
    forget_pids "$wrk_pid"
    healthy_requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.log")
    healthy_bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$dir/wrk.log")
    healthy_p99=$(awk '$1 == "99%" { print $2 }' "$dir/wrk.log")
    healthy_requests=${healthy_requests:-0}
else
    ok_deadline=$(($(now_us) + (HOLE_SECONDS - 1) * 1000000))
    while (($(now_us) < ok_deadline)); do
        code=$(curl -s -o /dev/null -m 5 -H "Host: ok.test" -w '%{http_code}' "$url" 2>/dev/null) || true
        healthy_requests=$((healthy_requests + 1))
        [[ $code == 200 ]] || healthy_bad=$((healthy_bad + 1))
    done
fi
for pid in "${hole_loops[@]}"; do
    stop_and_reap "$pid" 150
done
forget_pids "${hole_loops[@]}"
after_bad=0
for ((i = 0; i < 20; i++)); do
    code=$(curl -s -o /dev/null -m 5 -H "Host: ok.test" -w '%{http_code}' "$url" 2>/dev/null) || true
    [[ $code == 200 ]] || after_bad=$((after_bad + 1))
done
read -r hole_total hole_504 hole_max < <(cat "$dir"/hole-*.log |
    awk '{ n++; if ($1 == "504") t++; if ($2 > m) m = $2 } END { printf "%d %d %.3f\n", n, t, m }')
stop_pids "$tether_pid" "$ok_pid" "$hole_pid"
echo "  black hole: $hole_504 of $hole_total answered 504, the slowest after ${hole_max} s; ok.test: $healthy_requests requests, $healthy_bad not 200 (p99 $healthy_p99); afterwards $after_bad of 20 not 200"
((hole_total > 0 && hole_504 == hole_total)) || problem "black hole: $hole_504 of $hole_total requests answered 504"
awk -v m="$hole_max" 'BEGIN { exit !(m < 5) }' || problem "black hole: a request took ${hole_max} s"
((healthy_requests > 0 && healthy_bad == 0)) || problem "healthy load balancer: $healthy_bad of $healthy_requests not 200 while the black hole held requests"
((after_bad == 0)) || problem "healthy load balancer: $after_bad of 20 not 200 afterwards"

# ================================================================ 3. key flood

echo
echo "== 3: a flood of distinct X-User session keys (max_sessions $MAX_SESSIONS)"
dir="$LOG_DIR/key-flood"
mkdir -p "$dir"
pa=$(free_port)
pb=$(free_port)
pt=$(free_port)
padm=$(free_port)
start_upstream a "$pa" "$dir/upstream-a.log"
fa_pid=$LAST_PID
start_upstream b "$pb" "$dir/upstream-b.log"
fb_pid=$LAST_PID
{
    pingora_keys "$dir"
    cat <<EOF
tether:
  listeners:
    - address: "127.0.0.1:$pt"
  admin: {address: "127.0.0.1:$padm"}
  max_sessions: $MAX_SESSIONS
  load_balancers:
    "*":
      default_pools: [web]
      session_affinity: header
      session_affinity_attributes: {headers: [X-User]}
  pools:
    web:
      endpoints:
        - {name: a, address: "127.0.0.1:$pa"}
        - {name: b, address: "127.0.0.1:$pb"}
EOF
} >"$dir/tether.yaml"
start_tether "$dir/tether.yaml" "$pt" "$dir/tether.log"
tether_pid=$LAST_PID
wait_port 127.0.0.1 "$padm" "$tether_pid" "$dir/tether.log"
url="http://127.0.0.1:$pt/"

# curl_keys FIRST COUNT: one curl process (kept-alive connection), COUNT requests, each
# with its own X-User; prints how many were not answered 200.
curl_keys() {
    awk -v first="$1" -v n="$2" -v url="$url" 'BEGIN {
        for (i = first; i < first + n; i++)
            printf "%surl = \"%s\"\nmax-time = 5\nheader = \"Host: x\"\nheader = \"X-User: flood-%d\"\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code}\\n\"\n", (i > first ? "next\n" : ""), url, i
    }' >"$dir/curl-$1.conf"
    { timeout 300 curl -s -K "$dir/curl-$1.conf" || true; } |
        awk -v n="$2" '$1 == "200" { ok++ } END { print n - ok }'
}

scrape() { curl -s -m 5 "http://127.0.0.1:$padm/metrics" || true; }

rss_start=$(vmrss_kib "$tether_pid")
first_bad=$(curl_keys 0 "$FLOOD_FIRST")
metrics=$(scrape)
sessions_first=$(metric "$metrics" tether_sessions)
rss_first=$(vmrss_kib "$tether_pid")
echo "  after $FLOOD_FIRST keys: tether_sessions ${sessions_first:-?}, VmRSS $rss_first KiB ($rss_start KiB at start); $first_bad not 200"
if ((HAVE_WRK)); then
    cat >"$dir/flood.lua" <<'EOF'
-- Every request carries a new X-User: "flood-<thread>-<n>".
local made = 0
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/", { ["Host"] = "x", ["X-User"] = "flood-" .. tid .. "-" .. n })
end
EOF
    wrk -t2 -c16 -d"${FLOOD_SECONDS}s" --timeout 5s -s "$dir/flood.lua" "$url" >"$dir/wrk.log" 2>&1 &
    wrk_pid=$!
    PIDS+=("$wrk_pid")
    stop_and_reap "$wrk_pid" $((10 * (FLOOD_SECONDS + 20)))
    forget_pids "$wrk_pid"
    flood_keys=$(awk '/requests in/ { print $1 }' "$dir/wrk.log")
    flood_keys=$((FLOOD_FIRST + ${flood_keys:-0}))
    flood_bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$dir/wrk.log")
    flood_how="wrk, ${FLOOD_SECONDS} s"
else
    flood_bad=$(curl_keys "$FLOOD_FIRST" $((FLOOD_CURL - FLOOD_FIRST)))
    flood_keys=$FLOOD_CURL
    flood_how="curl"
fi
metrics=$(scrape)
sessions_total=$(metric "$metrics" tether_sessions)
sessions_max=$(metric "$metrics" tether_sessions_max)
rss_total=$(vmrss_kib "$tether_pid")
growth=$((rss_total - rss_first))
stop_pids "$tether_pid" "$fa_pid" "$fb_pid"
echo "  after $flood_keys keys ($flood_how): tether_sessions ${sessions_total:-?} (max ${sessions_max:-?}), VmRSS $rss_total KiB (growth $growth KiB); $flood_bad not 200"
[[ ${sessions_total:-x} =~ ^[0-9]+$ ]] && ((sessions_total <= MAX_SESSIONS)) ||
    problem "tether_sessions is ${sessions_total:-missing}, the bound is $MAX_SESSIONS"
((growth < MAX_GROWTH_KIB)) || problem "VmRSS grew by $growth KiB during the flood"
((first_bad == 0 && flood_bad == 0)) || problem "key flood: $first_bad + $flood_bad requests not 200"

# ================================================================ table

echo
echo "Faults under load ($PROFILE build; logs in $LOG_DIR)"
echo
echo "1. endpoint a killed (SIGKILL) mid-load; errors/requests of the sessions pinned to a, by when the"
echo "   request started (failovers: their failover_<mode> answers; pinned b/c: errors/requests of the others)"
printf '%-10s %9s %9s %14s %18s %10s %17s %12s\n' mode requests "noticed" "in flight" "before detection" failovers "after detection" "pinned b/c"
for row in "${KILL_ROWS[@]}"; do
    echo "$row"
done
echo
echo "2. black hole (accepts, never answers; read timeout 0.5 s), $HOLE_CLIENTS clients for ${HOLE_SECONDS} s"
printf '%-22s %8s %6s %12s %22s %10s\n' "" requests 504s "slowest (s)" "ok.test during (bad)" "ok p99"
printf '%-22s %8d %6d %12s %22s %10s\n' "black hole / ok.test" "$hole_total" "$hole_504" "$hole_max" "$healthy_requests ($healthy_bad)" "$healthy_p99"
echo
echo "3. key flood (session_affinity: header, max_sessions $MAX_SESSIONS)"
printf '%-24s %16s %18s\n' "" tether_sessions "VmRSS (KiB)"
printf '%-24s %16s %18s\n' "after $FLOOD_FIRST keys" "${sessions_first:-?}" "$rss_first"
printf '%-24s %16s %18s\n' "after $flood_keys keys" "${sessions_total:-?}" "$rss_total (+$growth)"
echo
if ((${#PROBLEMS[@]} == 0)); then
    echo "every promise held"
    exit 0
fi
echo "${#PROBLEMS[@]} unexpected result(s):"
printf '  %s\n' "${PROBLEMS[@]}"
exit 1
