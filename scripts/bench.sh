#!/usr/bin/env bash
# Tether side by side with HAProxy, NGINX and a bare Pingora proxy (the framework's floor).
#
#   scripts/bench.sh                 the full run: 1 worker thread, then 2; BENCH_ROUNDS rounds
#                                    of 10 s measurements, interleaved (A B C A B C ...)
#   scripts/bench.sh --quick         3 s per measurement, 3 rounds
#   scripts/bench.sh --wait-quiet    first wait (at most 15 min) for load average < 0.5 and no
#                                    rustc/cargo running; runs anyway after that, and says so
#   scripts/bench.sh --conn-memory   memory per open client connection instead: each proxy
#                                    (1 thread) holds BENCH_CONNS (default 2000) connections that
#                                    sent half a request header; RSS before, with them, per
#                                    connection, and 15 s after they closed
#   scripts/bench.sh --ws            (or BENCH_WS=1) WebSockets instead: each proxy (1 thread,
#                                    pinned) in front of a WebSocket echo server
#                                    (examples/ws_load.rs); BENCH_WS_CONNS (default 2000)
#                                    WebSockets opened and held: RSS per open WebSocket; then
#                                    BENCH_WS_MESSAGES (default 50) echoes on each: proxy CPU per
#                                    relayed message (each echo crosses the proxy twice);
#                                    BENCH_ROUNDS rounds, interleaved, medians; BENCH_PROXIES
#                                    default "tether pingora pingora_unbuffered haproxy nginx"
#   scripts/bench.sh --origins       (or BENCH_ORIGINS set) the origins rows instead: the same
#                                    load (1 thread, pinned; clients with session) through each
#                                    proxy to upstream NGINX servers that speak plain HTTP/1.1
#                                    (`plain`, the baseline), HTTPS (`tls`: TLS 1.3, a certificate
#                                    from a CA made here with openssl, verified by every proxy,
#                                    keep-alive and session reuse on) and HTTP/2 with prior
#                                    knowledge (`h2c`; NGINX as the proxy through grpc_pass);
#                                    BENCH_ORIGINS (default "plain tls h2c"), BENCH_PROXIES
#                                    default "tether pingora haproxy nginx"; first every proxy
#                                    must refuse an origin certificate for another name and one
#                                    from another CA; a round measures every origin with every
#                                    proxy, interleaved; medians; tables to
#                                    target/bench/origins.md
#
# Environment: BENCH_SECONDS (measurement length, default 10), BENCH_ROUNDS (default 5),
# BENCH_THREADS (default "1 2"), BENCH_PROXIES (default "tether tether_nolog pingora haproxy
# nginx"), BENCH_PIN (auto | on | off; auto pins the 1-thread matrix: proxy on CPU 0, wrk and the
# upstream NGINX on CPU 1; the 2-thread matrix is not pinned), BENCH_QUIET_TIMEOUT (seconds,
# default 900), BENCH_IDLE_CONNS (idle client connections for the RSS line, default 1000; 0: no
# line).
#
# The proxies: tether (the headline: Tether as installed, cookie affinity, its default logging
# `RUST_LOG=info` with the access log in text to a file), tether_nolog (the access log off:
# RUST_LOG=warn), tether_off (affinity none and the access log off), tether_json (the access log
# in json), tether_header (header affinity on X-Session), tether_ip_cookie (ip_cookie affinity),
# tether_1000 (cookie affinity over a pool of 1,000 endpoints: 1,000 loopback addresses of one
# NGINX), haproxy, nginx, pingora (the bare
# Pingora example as shipped), pingora_timeouts (bare with Tether's four upstream timeouts),
# pingora_log (bare with an env_logger line per request), pingora_unbuffered (bare with the
# listener's L4 read buffer off: Pingora's `L4BufferSettings`, read 0).
#
# One NGINX process serves the upstreams; each proxy in turn is started in front of them,
# warmed up for 2 s with wrk, then measured with `wrk -t1 -c32 --latency`, once with clients
# that carry their session (the __cflb cookie; X-Session for header affinity) and once with
# clients that never send one. The proxy is restarted for every measurement so its peak RSS
# belongs to that measurement alone. A round measures every proxy once; the tables give the
# median of the rounds and their min-max, and each ratio is the median of the rounds' ratios
# (each taken between neighbours in time, so slow drift of a noisy machine cancels).
# Tables go to stdout and to target/bench/results.md; wrk's raw output to target/bench/raw/.
# Every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

usage() {
    # The header comment: from line 2 to the first line that is not a comment.
    awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"
}

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
ROUNDS="${BENCH_ROUNDS:-5}"
IDLE_CONNS="${BENCH_IDLE_CONNS:-1000}"
WAIT_QUIET=0
CONN_MEMORY=0
WS=0
[[ ${BENCH_WS:-0} == 1 ]] && WS=1
ORIGINS_MODE=0
[[ -n ${BENCH_ORIGINS:-} ]] && ORIGINS_MODE=1
for arg in "$@"; do
    case "$arg" in
        --quick)
            SECONDS_PER_RUN=3
            ROUNDS="${BENCH_ROUNDS:-3}"
            ;;
        --conn-memory) CONN_MEMORY=1 ;;
        --ws) WS=1 ;;
        --origins) ORIGINS_MODE=1 ;;
        --wait-quiet) WAIT_QUIET=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
done
THREAD_COUNTS="${BENCH_THREADS:-1 2}"
ORIGINS="${BENCH_ORIGINS:-plain tls h2c}"
if ((WS)); then
    PROXIES="${BENCH_PROXIES:-tether pingora pingora_unbuffered haproxy nginx}"
elif ((ORIGINS_MODE)); then
    PROXIES="${BENCH_PROXIES:-tether pingora haproxy nginx}"
else
    PROXIES="${BENCH_PROXIES:-tether tether_nolog pingora haproxy nginx}"
fi
WS_CONNS="${BENCH_WS_CONNS:-2000}"
WS_MESSAGES="${BENCH_WS_MESSAGES:-50}"
PIN_MODE="${BENCH_PIN:-auto}"
QUIET_TIMEOUT="${BENCH_QUIET_TIMEOUT:-900}"
WARMUP_SECONDS=2
CONNECTIONS=32
FIXED_COOKIE="bench-fixed-session"

if ! [[ $SECONDS_PER_RUN =~ ^[1-9][0-9]*$ ]]; then
    echo "BENCH_SECONDS must be a positive integer, got $SECONDS_PER_RUN" >&2
    exit 2
fi
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    echo "BENCH_ROUNDS must be a positive integer, got $ROUNDS" >&2
    exit 2
fi
if ! [[ $WS_CONNS =~ ^[1-9][0-9]*$ && $WS_MESSAGES =~ ^[1-9][0-9]*$ ]]; then
    echo "BENCH_WS_CONNS and BENCH_WS_MESSAGES must be positive integers, got $WS_CONNS and $WS_MESSAGES" >&2
    exit 2
fi
if ! [[ $IDLE_CONNS =~ ^[0-9]+$ ]]; then
    echo "BENCH_IDLE_CONNS must be a number, got $IDLE_CONNS" >&2
    exit 2
fi
case "$PIN_MODE" in auto | on | off) ;; *)
    echo "BENCH_PIN must be auto, on or off, got $PIN_MODE" >&2
    exit 2
    ;;
esac
for t in $THREAD_COUNTS; do
    [[ $t =~ ^[1-9][0-9]*$ ]] || {
        echo "BENCH_THREADS: bad thread count $t" >&2
        exit 2
    }
done
if ((ORIGINS_MODE)); then
    ((WS || CONN_MEMORY)) && {
        echo "--origins goes alone (not with --ws or --conn-memory)" >&2
        exit 2
    }
    [[ -n ${ORIGINS// /} ]] || {
        echo "BENCH_ORIGINS is empty" >&2
        exit 2
    }
    for o in $ORIGINS; do
        case "$o" in plain | tls | h2c) ;; *)
            echo "BENCH_ORIGINS: unknown origin $o (plain tls h2c)" >&2
            exit 2
            ;;
        esac
    done
    [[ " $PROXIES " == *" tether_1000 "* ]] && {
        echo "BENCH_PROXIES: tether_1000 is not measured with --origins" >&2
        exit 2
    }
fi
for p in $PROXIES; do
    case "$p" in tether | tether_nolog | tether_off | tether_json | tether_header | tether_ip_cookie | tether_1000 | haproxy | nginx | pingora | pingora_timeouts | pingora_log | pingora_unbuffered) ;; *)
        echo "BENCH_PROXIES: unknown proxy $p (tether tether_nolog tether_off tether_json tether_header tether_ip_cookie tether_1000 haproxy nginx pingora pingora_timeouts pingora_log pingora_unbuffered)" >&2
        exit 2
        ;;
    esac
done

die() {
    echo "bench: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- prerequisites

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
((ORIGINS_MODE)) && { command -v openssl >/dev/null || missing+=(openssl); }
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        die "missing: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})"
    fi
fi
# The packages' own services are not used; the bench starts its own processes.

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
echo "== cargo build --release --bin tether --example bare_pingora --example ws_load"
cargo build --release --quiet --bin tether --example bare_pingora --example ws_load
TETHER_BIN="$TARGET_DIR/release/tether"
PINGORA_BIN="$TARGET_DIR/release/examples/bare_pingora"
WS_LOAD_BIN="$TARGET_DIR/release/examples/ws_load"
OUT_DIR="$TARGET_DIR/bench"
mkdir -p "$OUT_DIR/raw"
RESULTS="$OUT_DIR/results.md"

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

# ---------------------------------------------------------------- processes and clean-up

TMP=$(mktemp -d /tmp/tether-bench.XXXXXX)
chmod 755 "$TMP"
UPSTREAM_PID=""
PROXY_PID=""
WRK_PID=""
WS_LOAD_PID=""
KEEP_TMP=0

# Sends $2 (default TERM) to pid $1, waits at most 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    [[ -n $pid ]] || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    stop_and_reap "$pid" 50
}

CLEANED=0
cleanup() {
    local rc=$?
    [[ $CLEANED == 1 ]] && return
    CLEANED=1
    stop_pid "$WRK_PID" TERM
    stop_pid "$WS_LOAD_PID" TERM
    stop_pid "$PROXY_PID" "${PROXY_STOP_SIG:-TERM}"
    stop_pid "$UPSTREAM_PID" TERM
    if [[ $rc != 0 && $rc != 130 && $rc != 143 ]]; then KEEP_TMP=1; fi
    if [[ $KEEP_TMP == 1 ]]; then
        echo "bench: logs and configs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port below the ephemeral range (so no client socket takes it meanwhile).
USED_PORTS=" "
free_port() {
    local i p listening
    listening=$(ss -Htln 2>/dev/null | awk '{print $4}')
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        grep -qE "[:.]$p\$" <<<"$listening" && continue
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free port found"
}

# The pid and every descendant of pid $1 (nginx master + worker, haproxy if it forks).
tree_pids() {
    local queue=("$1") out=() pid kids i
    for ((i = 0; i < 64 && ${#queue[@]} > 0; i++)); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        kill -0 "$pid" 2>/dev/null || continue
        out+=("$pid")
        kids=$(pgrep -P "$pid" || true)
        for k in $kids; do queue+=("$k"); done
    done
    echo "${out[@]}"
}

# utime + stime in clock ticks, summed over the pids given (all their threads, dead ones too).
cpu_ticks() {
    local total=0 pid f
    for pid in "$@"; do
        # Field 2 (comm) may hold spaces: cut everything up to the last ')'.
        f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        # After comm: state is field 3, so utime (14) and stime (15) are the 12th and 13th here.
        total=$((total + $(awk '{print $12 + $13}' <<<"$f")))
    done
    echo "$total"
}

# Peak RSS (VmHWM) in KiB summed over the pids given.
peak_rss_kib() {
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Polls (bounded, 10 s) until URL $1 answers; $2 is the pid that must stay alive; more
# arguments go to curl.
wait_http() {
    local url=$1 pid=$2 i
    shift 2
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if curl -s -o /dev/null --max-time 1 "$@" "$url"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- quiet machine

QUIET_NOTE=""
is_quiet() {
    local load
    load=$(awk '{print $1}' /proc/loadavg)
    awk -v l="$load" 'BEGIN{exit !(l < 0.5)}' || return 1
    ! pgrep -x rustc >/dev/null && ! pgrep -x cargo >/dev/null
}
if [[ $WAIT_QUIET == 1 ]]; then
    echo "== waiting (at most ${QUIET_TIMEOUT}s) for load average < 0.5 and no rustc/cargo"
    start=$(date +%s)
    quiet=0
    for ((i = 0; i < QUIET_TIMEOUT / 5 + 1; i++)); do
        if is_quiet; then
            quiet=1
            break
        fi
        (($(date +%s) - start >= QUIET_TIMEOUT)) && break
        sleep 5
    done
    if [[ $quiet == 1 ]]; then
        QUIET_NOTE="quiet machine: yes (load average $(cut -d' ' -f1-3 /proc/loadavg) after $(($(date +%s) - start)) s of waiting)"
    else
        QUIET_NOTE="quiet machine: NO — still busy after ${QUIET_TIMEOUT} s (load average $(cut -d' ' -f1-3 /proc/loadavg); rustc/cargo running: $(pgrep -xc 'rustc|cargo' || true)); ran anyway"
    fi
    echo "   $QUIET_NOTE"
fi

# ---------------------------------------------------------------- upstreams: one NGINX

if [[ $(id -u) == 0 ]]; then NGINX_USER="user root;"; else NGINX_USER=""; fi
UP_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
UPSTREAMS=()
for p in "${UP_PORTS[@]}"; do UPSTREAMS+=("127.0.0.1:$p"); done
# tether_1000's pool: 1,000 loopback addresses (127.0.1.1 to 127.0.4.250) on one port.
WIDE=()
if [[ " $PROXIES " == *" tether_1000 "* ]]; then
    WIDE_PORT=$(free_port)
    for ((i = 0; i < 1000; i++)); do WIDE+=("127.0.$((1 + i / 250)).$((1 + i % 250)):$WIDE_PORT"); done
fi
# --origins: the three upstreams again over HTTPS and over h2c, each answering as its plain
# twin, and the CA that signed the HTTPS ones' certificate (a name only: DNS:$ORIGIN_NAME).
# More for checks: two HTTPS upstreams every proxy must refuse, one whose certificate (same
# CA) names another host, one whose certificate names the right host but comes from another
# CA; and NGINX's stub_status, whose count of accepted connections shows how many connections
# each proxy opened to the origins during its run.
TLS_UPSTREAMS=()
H2C_UPSTREAMS=()
ORIGIN_NAME=origin.bench
PKI="$TMP/pki"
ORIGIN=plain
BAD_ORIGIN="" # name | ca: the proxies' tls upstreams are the one refused for that reason
declare -A BAD_UPSTREAM=()
if ((ORIGINS_MODE)); then
    for i in 0 1 2; do
        TLS_UPSTREAMS+=("127.0.0.1:$(free_port)")
        H2C_UPSTREAMS+=("127.0.0.1:$(free_port)")
    done
    BAD_UPSTREAM[name]="127.0.0.1:$(free_port)"
    BAD_UPSTREAM[ca]="127.0.0.1:$(free_port)"
    ORIGIN_STATUS="127.0.0.1:$(free_port)"
    mkdir -p "$PKI"
    {
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
            -keyout "$PKI/ca.key" -out "$PKI/ca.pem" -subj "/CN=Tether bench origin CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                -keyout "$PKI/origin.key" -out "$PKI/origin.csr" -subj "/CN=$ORIGIN_NAME" &&
            printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
                "$ORIGIN_NAME" >"$PKI/origin.ext" &&
            openssl x509 -req -in "$PKI/origin.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
                -days 2 -extfile "$PKI/origin.ext" -out "$PKI/origin.pem" &&
            openssl req -new -key "$PKI/origin.key" -out "$PKI/wrong.csr" -subj "/CN=wrong.bench" &&
            sed "s/DNS:$ORIGIN_NAME/DNS:wrong.bench/" "$PKI/origin.ext" >"$PKI/wrong.ext" &&
            openssl x509 -req -in "$PKI/wrong.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
                -days 2 -extfile "$PKI/wrong.ext" -out "$PKI/wrong.pem" &&
            openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
                -keyout "$PKI/other-ca.key" -out "$PKI/other-ca.pem" -subj "/CN=Another CA" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl x509 -req -in "$PKI/origin.csr" -CA "$PKI/other-ca.pem" -CAkey "$PKI/other-ca.key" \
                -CAcreateserial -days 2 -extfile "$PKI/origin.ext" -out "$PKI/other-ca-origin.pem"
    } >"$PKI/openssl.log" 2>&1 || die "openssl could not make the origin CA and certificate: $(cat "$PKI/openssl.log")"
fi
# The addresses of the upstreams of origin $ORIGIN, one a line.
origin_upstreams() {
    case "$ORIGIN" in
        plain) printf '%s\n' "${UPSTREAMS[@]}" ;;
        tls)
            if [[ -n $BAD_ORIGIN ]]; then
                printf '%s\n' "${BAD_UPSTREAM[$BAD_ORIGIN]}" "${BAD_UPSTREAM[$BAD_ORIGIN]}" "${BAD_UPSTREAM[$BAD_ORIGIN]}"
            else
                printf '%s\n' "${TLS_UPSTREAMS[@]}"
            fi
            ;;
        h2c) printf '%s\n' "${H2C_UPSTREAMS[@]}" ;;
    esac
}
# An NGINX listener for h2c (HTTP/2 with prior knowledge) on address $1: NGINX 1.25.1 turned
# `listen ... http2` into `http2 on;`.
nginx_h2c_listen() {
    local v
    v=$(nginx -v 2>&1 | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')
    if printf '1.25.1\n%s\n' "$v" | sort -V -C; then
        echo "listen $1; http2 on;"
    else
        echo "listen $1 http2;"
    fi
}
mkdir -p "$TMP/upstream"
{
    echo "$NGINX_USER"
    cat <<EOF
worker_processes 1;
daemon off;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/upstream/body;
EOF
    for i in 0 1 2; do
        cat <<EOF
    server {
        listen ${UPSTREAMS[$i]};
        location / { default_type text/plain; return 200 "ok from $((i + 1))\n"; }
    }
EOF
    done
    for i in "${!TLS_UPSTREAMS[@]}"; do
        cat <<EOF
    server {
        listen ${TLS_UPSTREAMS[$i]} ssl;
        ssl_certificate $PKI/origin.pem;
        ssl_certificate_key $PKI/origin.key;
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:origin:1m;
        ssl_session_timeout 1h;
        location / { default_type text/plain; return 200 "ok from $((i + 1))\n"; }
    }
EOF
    done
    for i in "${!H2C_UPSTREAMS[@]}"; do
        cat <<EOF
    server {
        $(nginx_h2c_listen "${H2C_UPSTREAMS[$i]}")
        location / { default_type text/plain; return 200 "ok from $((i + 1))\n"; }
    }
EOF
    done
    if ((ORIGINS_MODE)); then
        cat <<EOF
    server {
        listen ${BAD_UPSTREAM[name]} ssl;
        ssl_certificate $PKI/wrong.pem;
        ssl_certificate_key $PKI/origin.key;
        ssl_protocols TLSv1.3;
        location / { default_type text/plain; return 200 "ok from the wrong name\n"; }
    }
    server {
        listen ${BAD_UPSTREAM[ca]} ssl;
        ssl_certificate $PKI/other-ca-origin.pem;
        ssl_certificate_key $PKI/origin.key;
        ssl_protocols TLSv1.3;
        location / { default_type text/plain; return 200 "ok from another CA\n"; }
    }
    server {
        listen $ORIGIN_STATUS;
        location / { stub_status; }
    }
EOF
    fi
    if ((${#WIDE[@]})); then
        echo "    server {"
        for a in "${WIDE[@]}"; do echo "        listen $a;"; done
        echo '        location / { default_type text/plain; return 200 "ok from 4\n"; }'
        echo "    }"
    fi
    echo "}"
} >"$TMP/upstream/nginx.conf"

# CPU sets for the matrix of $1 threads: PROXY_PIN / LOAD_PIN are command prefixes.
set_pinning() {
    local threads=$1 pin
    case "$PIN_MODE" in
        on) pin=1 ;;
        off) pin=0 ;;
        auto) if [[ $threads == 1 ]]; then pin=1; else pin=0; fi ;;
    esac
    if [[ $pin == 1 && $NCPU -ge 2 ]]; then
        PROXY_PIN=(taskset -c 0)
        LOAD_PIN=(taskset -c 1)
        PIN_DESC="proxy on CPU 0; wrk and the upstream NGINX on CPU 1"
    else
        PROXY_PIN=()
        LOAD_PIN=()
        PIN_DESC="not pinned: proxy, wrk and the upstream NGINX share all $NCPU CPUs"
    fi
}

start_upstream() {
    stop_pid "$UPSTREAM_PID" TERM
    UPSTREAM_PID=""
    "${LOAD_PIN[@]}" nginx -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" -e "$TMP/upstream/error.log" \
        >"$TMP/upstream/stdout.log" 2>&1 &
    UPSTREAM_PID=$!
    local i
    for i in 0 1 2; do
        wait_http "http://${UPSTREAMS[$i]}/" "$UPSTREAM_PID" ||
            die "upstream NGINX does not answer on ${UPSTREAMS[$i]}: $(tail -5 "$TMP/upstream/error.log" 2>/dev/null)"
        [[ $(curl -s --max-time 2 "http://${UPSTREAMS[$i]}/") == "ok from $((i + 1))" ]] ||
            die "upstream ${UPSTREAMS[$i]} gives the wrong body"
    done
    local port
    for i in "${!TLS_UPSTREAMS[@]}"; do
        port=${TLS_UPSTREAMS[$i]##*:}
        wait_http "https://$ORIGIN_NAME:$port/" "$UPSTREAM_PID" --cacert "$PKI/ca.pem" \
            --resolve "$ORIGIN_NAME:$port:127.0.0.1" --tlsv1.3 ||
            die "the HTTPS upstream ${TLS_UPSTREAMS[$i]} does not answer: $(tail -5 "$TMP/upstream/error.log" 2>/dev/null)"
        [[ $(curl -s --max-time 2 --cacert "$PKI/ca.pem" --resolve "$ORIGIN_NAME:$port:127.0.0.1" --tlsv1.3 \
            "https://$ORIGIN_NAME:$port/") == "ok from $((i + 1))" ]] ||
            die "the HTTPS upstream ${TLS_UPSTREAMS[$i]} gives the wrong body"
    done
    for i in "${!H2C_UPSTREAMS[@]}"; do
        wait_http "http://${H2C_UPSTREAMS[$i]}/" "$UPSTREAM_PID" --http2-prior-knowledge ||
            die "the h2c upstream ${H2C_UPSTREAMS[$i]} does not answer: $(tail -5 "$TMP/upstream/error.log" 2>/dev/null)"
        [[ $(curl -s --max-time 2 --http2-prior-knowledge "http://${H2C_UPSTREAMS[$i]}/") == "ok from $((i + 1))" ]] ||
            die "the h2c upstream ${H2C_UPSTREAMS[$i]} gives the wrong body"
    done
    if ((${#WIDE[@]})); then
        for i in 0 999; do
            wait_http "http://${WIDE[$i]}/" "$UPSTREAM_PID" ||
                die "upstream NGINX does not answer on ${WIDE[$i]}: $(tail -5 "$TMP/upstream/error.log" 2>/dev/null)"
        done
    fi
}

# ---------------------------------------------------------------- proxy configs

COOKIE_KEYS="$TMP/cookie.keys"
head -c 32 /dev/urandom | base64 >"$COOKIE_KEYS"

# Writes the config of proxy $1 for $2 threads listening on port $3; prints its path.
write_config() {
    local proxy=$1 threads=$2 port=$3 dir="$TMP/$1-$2"
    mkdir -p "$dir"
    case "$proxy" in
        tether*)
            local affinity=cookie attributes="" format=text
            case "$proxy" in
                tether_json) format=json ;;
                tether_header)
                    affinity=header
                    attributes='      session_affinity_attributes: { headers: [X-Session] }'
                    ;;
                tether_ip_cookie) affinity=ip_cookie ;;
                tether_off) affinity=none ;;
            esac
            {
                cat <<EOF
version: 1
threads: $threads
pid_file: $dir/tether.pid
upgrade_sock: $dir/upgrade.sock
grace_period_seconds: 1
graceful_shutdown_timeout_seconds: 1
tether:
  listeners:
    - address: "127.0.0.1:$port"
  cookie_keys_file: $COOKIE_KEYS
  access_log: { format: $format }
  load_balancers:
    "*":
      default_pools: [bench]
      session_affinity: $affinity
EOF
                [[ -n $attributes ]] && echo "$attributes"
                echo "  pools:"
                echo "    bench:"
                # --origins: HTTPS verified against the bench CA, or h2c.
                case "$ORIGIN" in
                    tls) echo "      tls: { verify: true, ca_path: $PKI/ca.pem, server_name: $ORIGIN_NAME }" ;;
                    h2c) echo "      protocol: h2c" ;;
                esac
                echo "      endpoints:"
                if [[ $proxy == tether_1000 ]]; then
                    for ((i = 0; i < ${#WIDE[@]}; i++)); do
                        echo "        - { name: w$i, address: \"${WIDE[$i]}\" }"
                    done
                else
                    i=0
                    for a in $(origin_upstreams); do
                        i=$((i + 1))
                        echo "        - { name: s$i, address: \"$a\" }"
                    done
                fi
            } >"$dir/tether.yaml"
            echo "$dir/tether.yaml"
            ;;
        pingora*)
            cat >"$dir/pingora.yaml" <<EOF
version: 1
threads: $threads
pid_file: $dir/pingora.pid
upgrade_sock: $dir/upgrade.sock
grace_period_seconds: 1
graceful_shutdown_timeout_seconds: 1
EOF
            echo "$dir/pingora.yaml"
            ;;
        haproxy)
            # --origins: \`ssl verify required\` against the bench CA for the origin's name (HAProxy
            # reuses TLS sessions to servers by default), or \`proto h2\`: h2c.
            local server_opts="" ups
            case "$ORIGIN" in
                tls) server_opts=" ssl verify required ca-file $PKI/ca.pem sni str($ORIGIN_NAME) verifyhost $ORIGIN_NAME" ;;
                h2c) server_opts=" proto h2" ;;
            esac
            mapfile -t ups < <(origin_upstreams)
            cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $threads
    maxconn $(if ((WS)); then echo $((2 * WS_CONNS + 1024)); else echo 4096; fi)

defaults
    mode http
    timeout connect 5s
    timeout client 100s
    timeout server 100s
    timeout http-keep-alive 100s
    # WebSockets (--ws): the tunnel's idle timeout
    timeout tunnel 1h
    option http-keep-alive
    http-reuse always

frontend bench
    bind 127.0.0.1:$port
    # the forwarding headers Tether sets
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend three

backend three
    balance roundrobin
    cookie __cflb insert indirect nocache
    server s1 ${ups[0]} cookie s1$server_opts
    server s2 ${ups[1]} cookie s2$server_opts
    server s3 ${ups[2]} cookie s3$server_opts
EOF
            echo "$dir/haproxy.cfg"
            ;;
        nginx)
            local ups
            mapfile -t ups < <(origin_upstreams)
            {
                echo "$NGINX_USER"
                cat <<EOF
worker_processes $threads;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$(if ((WS)); then echo "worker_rlimit_nofile $((4 * WS_CONNS + 1024));"; fi)
events { worker_connections $(if ((WS)); then echo $((4 * WS_CONNS + 1024)); else echo 4096; fi); }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    upstream three {
        hash \$cookie___cflb consistent;
        server ${ups[0]};
        server ${ups[1]};
        server ${ups[2]};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
$(nginx_forwarding)
        }
    }
}
EOF
            } >"$dir/nginx.conf"
            echo "$dir/nginx.conf"
            ;;
    esac
}

# NGINX's location for origin $ORIGIN: proxy_pass over plain HTTP/1.1 or HTTPS, or, for h2c,
# grpc_pass (NGINX's only HTTP/2 client; it passes plain GETs as well).
nginx_forwarding() {
    if [[ $ORIGIN == h2c ]]; then
        cat <<EOF
            grpc_pass grpc://three;
            # the forwarding headers Tether sets, and the client's Host as Tether passes it
            grpc_set_header Host \$http_host;
            grpc_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            grpc_set_header X-Forwarded-Proto \$scheme;
            grpc_set_header X-Forwarded-Host \$host;
EOF
        return
    fi
    if [[ $ORIGIN == tls ]]; then
        # proxy_ssl_protocols: NGINX before 1.23.4 leaves TLS 1.3 out by default.
        cat <<EOF
            proxy_pass https://three;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $PKI/ca.pem;
            proxy_ssl_name $ORIGIN_NAME;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
EOF
    else
        echo "            proxy_pass http://three;"
    fi
    cat <<EOF
            proxy_http_version 1.1;
$(if ((WS)); then
                    echo '            proxy_set_header Upgrade $http_upgrade;'
                    echo '            proxy_set_header Connection "upgrade";'
                    echo '            proxy_read_timeout 1h;'
                else
                    echo '            proxy_set_header Connection "";'
                fi)
            # the forwarding headers Tether sets, and the client's Host as Tether passes it
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
EOF
}

# Starts proxy $1 ($2 threads) on port $3 with config $4; sets PROXY_PID and PROXY_STOP_SIG.
# PROXY_WAIT_ARGS: more curl arguments for the readiness poll.
PROXY_WAIT_ARGS=()
start_proxy() {
    local proxy=$1 threads=$2 port=$3 conf=$4 log
    log="$(dirname "$conf")/stderr.log"
    case "$proxy" in
        tether*)
            "$TETHER_BIN" -t -c "$conf" >"$log" 2>&1 || die "tether rejects its config: $(cat "$log")"
            # Tether's default logging (RUST_LOG unset means info): the access log is on, one
            # line per request into $log, a file. tether_nolog: RUST_LOG=warn, the access log
            # (target `access`, level info) off.
            local filter=info
            [[ $proxy == tether_nolog || $proxy == tether_off ]] && filter=warn
            RUST_LOG=$filter "${PROXY_PIN[@]}" "$TETHER_BIN" -c "$conf" >"$log" 2>&1 &
            PROXY_STOP_SIG=INT # Pingora: SIGINT exits at once, SIGTERM waits for the grace period
            ;;
        pingora*)
            local flags=()
            [[ $proxy == pingora_timeouts ]] && flags=(--peer-timeouts)
            [[ $proxy == pingora_log ]] && flags=(--log)
            [[ $proxy == pingora_unbuffered ]] && flags=(--l4-read 0)
            [[ $ORIGIN == tls ]] && flags+=(--upstream-tls "$PKI/ca.pem" "$ORIGIN_NAME")
            [[ $ORIGIN == h2c ]] && flags+=(--upstream-h2c)
            local ups
            mapfile -t ups < <(origin_upstreams)
            RUST_LOG=info "${PROXY_PIN[@]}" "$PINGORA_BIN" -c "$conf" "${flags[@]}" "127.0.0.1:$port" "${ups[@]}" >"$log" 2>&1 &
            PROXY_STOP_SIG=INT
            ;;
        haproxy)
            haproxy -c -q -f "$conf" >"$log" 2>&1 || die "haproxy rejects its config: $(cat "$log")"
            # -db: foreground, no master-worker: one process.
            "${PROXY_PIN[@]}" haproxy -db -f "$conf" >"$log" 2>&1 &
            PROXY_STOP_SIG=TERM
            ;;
        nginx)
            nginx -t -q -p "$(dirname "$conf")" -c "$conf" -e "$(dirname "$conf")/error.log" >"$log" 2>&1 ||
                die "nginx rejects its proxy config: $(cat "$log")"
            "${PROXY_PIN[@]}" nginx -p "$(dirname "$conf")" -c "$conf" -e "$(dirname "$conf")/error.log" >"$log" 2>&1 &
            PROXY_STOP_SIG=TERM
            ;;
    esac
    PROXY_PID=$!
    wait_http "http://127.0.0.1:$port/" "$PROXY_PID" "${PROXY_WAIT_ARGS[@]}" ||
        die "$proxy ($threads threads) does not answer on 127.0.0.1:$port: $(tail -5 "$log"; tail -5 "$(dirname "$conf")/error.log" 2>/dev/null || true)"
}

# The header clients of kind "cookie" send to proxy $1 on port $2: the __cflb cookie it set
# (a fixed one for proxies that set none), or X-Session for header affinity.
client_header() {
    local proxy=$1 port=$2 headers value
    case "$proxy" in
        tether_header) echo "X-Session: bench-fixed-session" ;;
        tether_off | nginx | pingora*) echo "Cookie: __cflb=$FIXED_COOKIE" ;;
        tether* | haproxy)
            headers=$(curl -s -D - -o /dev/null --max-time 2 "http://127.0.0.1:$port/")
            value=$(tr -d '\r' <<<"$headers" | awk 'tolower($1)=="set-cookie:" && $2 ~ /^__cflb=/ {sub(/;.*/, "", $2); sub(/^__cflb=/, "", $2); print $2; exit}')
            [[ -n $value ]] || die "$proxy set no __cflb cookie; headers were:
$headers"
            echo "Cookie: __cflb=$value"
            ;;
    esac
}

# Checks that proxy $1 on port $2 answers 200 from an upstream (with header $3 when given).
check_200() {
    local proxy=$1 port=$2 header=$3 code body
    local args=(-s -o "$TMP/body" -w '%{http_code}' --max-time 2)
    [[ -n $header ]] && args+=(-H "$header")
    code=$(curl "${args[@]}" "http://127.0.0.1:$port/") || code="no answer"
    body=$(cat "$TMP/body" 2>/dev/null || true)
    if [[ $code != 200 || $body != "ok from "* ]]; then
        die "$proxy answered '$code' (body: '$body') before its run; expected 200 'ok from N'"
    fi
}

# The connections the origins' NGINX has accepted so far (its stub_status).
origin_accepts() {
    curl -s --max-time 2 "http://$ORIGIN_STATUS/" | awk 'f { print $1; exit } /accepts/ { f = 1 }'
}

# --origins: proxy $1, started on port $2 in front of the HTTPS origin refused for reason
# $BAD_ORIGIN, must refuse it: any answer but 200.
declare -A BAD_WHY=([name]="whose certificate (same CA) names wrong.bench" [ca]="whose certificate for $ORIGIN_NAME comes from another CA")
check_refuses_bad_origin() {
    local proxy=$1 code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "http://127.0.0.1:$2/") || code="no answer"
    [[ $code != 200 ]] || die "$proxy answered 200 from an HTTPS origin ${BAD_WHY[$BAD_ORIGIN]}: it does not verify"
    echo "   $proxy refuses an origin ${BAD_WHY[$BAD_ORIGIN]} ($code)"
    BAD_ORIGIN_NOTE+="${BAD_ORIGIN_NOTE:+, }$proxy $code"
}
BAD_ORIGIN_NOTE=""

# wrk's latency string (e.g. 312.00us, 1.20ms, 1.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN{
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

# ---------------------------------------------------------------- one measurement

# Results of each round, keyed "threads|proxy|kind|field|round" ("threads|origin:proxy|..."
# with --origins).
declare -A R=()
ERRORS=()

# Measures proxy $1 with $2 threads for client kind $3 (cookie | none), round $4. With
# --origins, to origin $ORIGIN: its results are keyed "threads|origin:proxy|kind".
measure() {
    local proxy=$1 threads=$2 kind=$3 round=$4 port conf header raw pids t0 t1 w0 w1 hdr=() id=$1
    ((ORIGINS_MODE)) && id="$ORIGIN:$proxy"
    port=$(free_port)
    conf=$(write_config "$proxy" "$threads" "$port")
    start_proxy "$proxy" "$threads" "$port" "$conf"
    header=""
    if [[ $kind == cookie ]]; then
        header=$(client_header "$proxy" "$port")
        hdr=(-H "$header")
    fi
    check_200 "$proxy" "$port" "$header"
    local url="http://127.0.0.1:$port/"
    # warm-up, not counted
    "${LOAD_PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP_SECONDS}s" "${hdr[@]}" "$url" >/dev/null 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk warm-up against $proxy failed"
    WRK_PID=""
    check_200 "$proxy" "$port" "$header"

    raw="$OUT_DIR/raw/t$threads-${id/:/-}-$kind-r$round.txt"
    pids=$(tree_pids "$PROXY_PID")
    local accepts0=""
    ((ORIGINS_MODE)) && accepts0=$(origin_accepts)
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    w0=$(date +%s.%N)
    "${LOAD_PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "${hdr[@]}" "$url" >"$raw" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk against $proxy failed: $(cat "$raw")"
    WRK_PID=""
    w1=$(date +%s.%N)
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    if [[ -n $accepts0 ]]; then
        # minus the connection that read the second count
        R["$threads|$id|$kind|conns|$round"]=$(($(origin_accepts) - accepts0 - 1))
    fi
    # shellcheck disable=SC2086
    R["$threads|$id|$kind|rss|$round"]=$(awk -v k="$(peak_rss_kib $pids)" 'BEGIN{printf "%.1f", k / 1024}')
    R["$threads|$id|$kind|npids|$round"]=$(wc -w <<<"$pids")
    stop_pid "$PROXY_PID" "$PROXY_STOP_SIG"
    PROXY_PID=""

    local reqs rps p50 p99 sock non2xx
    reqs=$(awk '/ requests in /{print $1; exit}' "$raw")
    rps=$(awk '/^Requests\/sec:/{print $2; exit}' "$raw")
    p50=$(awk '/Latency Distribution/{f=1; next} f && $1=="50%"{print $2; exit}' "$raw")
    p99=$(awk '/Latency Distribution/{f=1; next} f && $1=="99%"{print $2; exit}' "$raw")
    [[ -n $reqs && -n $rps && -n $p50 && -n $p99 && $reqs -gt 0 ]] || die "cannot read wrk's output for $proxy:
$(cat "$raw")"
    sock=$(grep -m1 'Socket errors:' "$raw" | sed 's/^ *//' || true)
    non2xx=$(grep -m1 'Non-2xx or 3xx responses:' "$raw" | sed 's/^ *//' || true)
    if [[ -n $sock || -n $non2xx ]]; then
        ERRORS+=("$threads thread(s), $id, clients $kind, round $round: ${sock:+$sock; }$non2xx")
        echo "   !! wrk: ${sock:+$sock; }$non2xx" >&2
    fi
    R["$threads|$id|$kind|rps|$round"]=$(awk -v r="$rps" 'BEGIN{printf "%.0f", r}')
    R["$threads|$id|$kind|p50|$round"]=$(to_ms "$p50")
    R["$threads|$id|$kind|p99|$round"]=$(to_ms "$p99")
    R["$threads|$id|$kind|cpu|$round"]=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.2f", d / hz * 1e6 / n}')
    R["$threads|$id|$kind|util|$round"]=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN{printf "%.0f", d / hz / (b - a) * 100}')
    printf '   %-22s %-7s %9s req/s  p50 %7s ms  p99 %7s ms  %7s us/req  CPU %4s%%  RSS %6s MiB (%s pids)\n' \
        "$id" "$kind" "${R["$threads|$id|$kind|rps|$round"]}" "${R["$threads|$id|$kind|p50|$round"]}" \
        "${R["$threads|$id|$kind|p99|$round"]}" "${R["$threads|$id|$kind|cpu|$round"]}" \
        "${R["$threads|$id|$kind|util|$round"]}" "${R["$threads|$id|$kind|rss|$round"]}" "${R["$threads|$id|$kind|npids|$round"]}"
}

# ---------------------------------------------------------------- memory per connection

# Current RSS (VmRSS) in KiB summed over the pids given.
rss_kib() {
    local pid total=0 v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Proxy $1 (1 thread): RSS idle, with $2 connections open that sent $3 (half: half a request
# header; idle: nothing), and after they closed. Sets CONN_BASE, CONN_HELD, CONN_AFTER (KiB).
conn_rss() {
    local proxy=$1 n=$2 send=$3 port conf pids ready="$TMP/conns.ready" stop="$TMP/conns.stop" i
    port=$(free_port)
    conf=$(write_config "$proxy" 1 "$port")
    start_proxy "$proxy" 1 "$port" "$conf"
    check_200 "$proxy" "$port" ""
    pids=$(tree_pids "$PROXY_PID")
    # shellcheck disable=SC2086
    CONN_BASE=$(rss_kib $pids)
    rm -f "$ready" "$stop"
    python3 - "$port" "$n" "$ready" "$stop" "$send" <<'PY' &
import os, socket, sys, time
port, n, ready, stop, send = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if send == "half":
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Partial: ")
    held.append(s)
open(ready, "w").close()
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline:
    time.sleep(0.05)
for s in held:
    s.close()
PY
    local holder=$!
    for ((i = 0; i < 600; i++)); do
        [[ -e $ready ]] && break
        kill -0 "$holder" 2>/dev/null || die "the connection holder for $proxy died"
        sleep 0.05
    done
    [[ -e $ready ]] || die "$n connections to $proxy were not open after 30 s"
    sleep 1
    # shellcheck disable=SC2086
    CONN_HELD=$(rss_kib $pids)
    touch "$stop"
    wait "$holder" || true
    sleep 15
    # shellcheck disable=SC2086
    CONN_AFTER=$(rss_kib $pids)
    stop_pid "$PROXY_PID" "$PROXY_STOP_SIG"
    PROXY_PID=""
}

# One table row of --conn-memory for proxy $1.
conn_memory() {
    local proxy=$1 n="${BENCH_CONNS:-2000}"
    conn_rss "$proxy" "$n" half
    printf '| %s | %d | %.1f | %.1f | %.1f | %.1f |\n' "${NAME[$proxy]}" "$n" \
        "$(awk -v k="$CONN_BASE" 'BEGIN{print k/1024}')" "$(awk -v k="$CONN_HELD" 'BEGIN{print k/1024}')" \
        "$(awk -v a="$CONN_HELD" -v b="$CONN_BASE" -v n="$n" 'BEGIN{print (a-b)/n}')" \
        "$(awk -v k="$CONN_AFTER" 'BEGIN{print k/1024}')"
}

# ---------------------------------------------------------------- tables

# Median, min and max of the numbers on stdin: "median min max" ("- - -" when none).
stats() {
    sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "- - -"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR] }'
}
# The rounds' values of key prefix $1 ("threads|proxy|kind") and field $2, one a line.
values() {
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        [[ -n ${R[$1|$2|$r]:-} ]] && echo "${R[$1|$2|$r]}"
    done
    return 0
}
# "median min max" on stdin (from stats) as "median (min–max)" in printf format $1, or "-".
show() {
    awk -v f="$1" '$1 == "-" { print "-"; next } { printf f " (" f "–" f ")\n", $1, $2, $3 }'
}
# "median (min-max)" of field $2 of key prefix $1, printed with format $3.
summary() { values "$1" "$2" | stats | show "$3"; }
# The median of field $2 of key prefix $1.
median() { values "$1" "$2" | stats | awk '{ print $1 }'; }
# The ratios a/b of field $3 between key prefixes $1 and $2, round by round, as
# "median min max".
ratio_summary() {
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        if [[ -n ${R[$1|$3|$r]:-} && -n ${R[$2|$3|$r]:-} ]]; then
            awk -v a="${R[$1|$3|$r]}" -v b="${R[$2|$3|$r]}" 'BEGIN{ if (b + 0 != 0) printf "%.4f\n", a / b }'
        fi
    done | stats
}

# ---------------------------------------------------------------- the run

declare -A NAME=([tether]="Tether (default logging)" [tether_nolog]="Tether, access log off" [tether_off]="Tether, affinity and access log off" [tether_json]="Tether, access log json" [tether_header]="Tether, header affinity" [tether_ip_cookie]="Tether, ip_cookie affinity" [tether_1000]="Tether, 1,000 endpoints" [haproxy]="HAProxy" [nginx]="NGINX" [pingora]="bare Pingora" [pingora_timeouts]="bare Pingora + Tether's peer timeouts" [pingora_log]="bare Pingora + a log line per request" [pingora_unbuffered]="bare Pingora, L4 read buffer off")
declare -A KIND=([cookie]="with session" [none]="no session")
declare -A PINNING=()

# ---------------------------------------------------------------- WebSockets (--ws)

# Whether proxy $1 is measured.
has() { [[ " $PROXIES " == *" $1 "* ]]; }

# The WebSocket echo server (examples/ws_load.rs) on the upstream ports, instead of NGINX.
start_ws_upstream() {
    stop_pid "$UPSTREAM_PID" TERM
    "${LOAD_PIN[@]}" "$WS_LOAD_BIN" echo "${UPSTREAMS[@]}" >"$TMP/ws-echo.log" 2>&1 &
    UPSTREAM_PID=$!
    local a
    for a in "${UPSTREAMS[@]}"; do
        wait_http "http://$a/" "$UPSTREAM_PID" || die "the WebSocket echo server does not answer on $a: $(tail -5 "$TMP/ws-echo.log")"
    done
}

# Proxy $1 (1 thread), round $2: ws_load through it; its fields go to R["ws|proxy|field|round"].
measure_ws() {
    local proxy=$1 round=$2 port conf pids out line f
    port=$(free_port)
    conf=$(write_config "$proxy" 1 "$port")
    start_proxy "$proxy" 1 "$port" "$conf"
    pids=$(tree_pids "$PROXY_PID")
    out="$OUT_DIR/raw/ws-$proxy-r$round.txt"
    "${LOAD_PIN[@]}" "$WS_LOAD_BIN" load --url "ws://127.0.0.1:$port/ws" --conns "$WS_CONNS" \
        --messages "$WS_MESSAGES" --clk-tck "$CLK_TCK" --pids "${pids// /,}" >"$out" 2>&1 &
    WS_LOAD_PID=$!
    wait "$WS_LOAD_PID" || die "ws_load through $proxy failed: $(tail -5 "$out"; tail -5 "$(dirname "$conf")/stderr.log")"
    WS_LOAD_PID=""
    stop_pid "$PROXY_PID" "$PROXY_STOP_SIG"
    PROXY_PID=""
    line=$(grep -m1 '^conns=' "$out") || die "cannot read ws_load's output for $proxy: $(cat "$out")"
    for f in rss_kib_per_conn pss_kib_per_conn rss_kib_per_conn_after_relay cpu_us_per_msg msgs_per_s base_rss_kib; do
        R["ws|$proxy|$f|$round"]=$(tr ' ' '\n' <<<"$line" | awk -F= -v k="$f" '$1 == k {print $2}')
    done
    printf '   %-20s %7s KiB/WebSocket open  %7s KiB after relay  %6s us CPU/message  %7s messages/s\n' "$proxy" \
        "${R["ws|$proxy|rss_kib_per_conn|$round"]}" "${R["ws|$proxy|rss_kib_per_conn_after_relay|$round"]}" \
        "${R["ws|$proxy|cpu_us_per_msg|$round"]}" "${R["ws|$proxy|msgs_per_s|$round"]}"
}

# "median (min–max)" of WebSocket field $2 of proxy $1 over the rounds, printf format $3.
ws_summary() {
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        [[ -n ${R[ws|$1|$2|$r]:-} ]] && echo "${R[ws|$1|$2|$r]}"
    done | sort -g | awk -v f="$3" '{v[NR] = $1} END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf f " (" f "–" f ")\n", m, v[1], v[NR] }'
}

# The median over the rounds of proxy $1's field $3 divided by proxy $2's (each round's ratio).
ws_ratio() {
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        if [[ -n ${R[ws|$1|$3|$r]:-} && -n ${R[ws|$2|$3|$r]:-} ]]; then
            awk -v a="${R[ws|$1|$3|$r]}" -v b="${R[ws|$2|$3|$r]}" 'BEGIN{ if (b + 0 != 0) printf "%.4f\n", a / b }'
        fi
    done | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f (%.2f–%.2f)\n", m, v[1], v[NR] }'
}

if ((WS)); then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    (($(ulimit -n) >= 4 * WS_CONNS + 256)) || die "open files limit $(ulimit -n) is too low for $WS_CONNS WebSockets (need $((4 * WS_CONNS + 256)))"
    set_pinning 1
    start_ws_upstream
    echo "== WebSockets: $WS_CONNS held, $WS_MESSAGES echoes each, 1 thread, $ROUNDS rounds (${PIN_DESC/wrk and the upstream NGINX/ws_load and the echo server})"
    for ((round = 1; round <= ROUNDS; round++)); do
        echo "-- round $round of $ROUNDS"
        for proxy in $PROXIES; do
            measure_ws "$proxy" "$round"
        done
    done
    stop_pid "$UPSTREAM_PID" TERM
    UPSTREAM_PID=""
    {
        echo "# Memory per open WebSocket and CPU per relayed message"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), tether $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(haproxy -v 2>/dev/null | head -1 | awk '{print $1, $2, $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //')"
        echo "- machine: $NCPU CPUs, Linux $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- each proxy: 1 worker thread/process (${PIN_DESC/wrk and the upstream NGINX/ws_load and the echo server}), in front of the WebSocket echo server of examples/ws_load.rs; \`ws_load load --conns $WS_CONNS --messages $WS_MESSAGES\`: $WS_CONNS WebSockets opened (each echoed one 64-byte message) and held; RSS (VmRSS summed over the proxy's processes) 1 s after the last opened, minus RSS before the first, per WebSocket; then $WS_MESSAGES echoes on each, all at once: proxy CPU (utime+stime) per relayed message (an echo is two)"
        echo "- $ROUNDS rounds interleaved (in the order $PROXIES); each cell: the median of the rounds (min–max); each ratio: the median of the rounds' ratios"
        echo
        echo "| proxy | KiB per open WebSocket | KiB per WebSocket after the echoes | CPU µs per relayed message | relayed messages/s |"
        echo "|---|---:|---:|---:|---:|"
        for proxy in $PROXIES; do
            echo "| ${NAME[$proxy]} | $(ws_summary "$proxy" rss_kib_per_conn %.1f) | $(ws_summary "$proxy" rss_kib_per_conn_after_relay %.1f) | $(ws_summary "$proxy" cpu_us_per_msg %.2f) | $(ws_summary "$proxy" msgs_per_s %.0f) |"
        done
        if has tether; then
            echo
            echo "| ratio | KiB per open WebSocket | CPU per relayed message | target (memory) |"
            echo "|---|---:|---:|---|"
            if has pingora; then echo "| Tether / bare Pingora | $(ws_ratio tether pingora rss_kib_per_conn) | $(ws_ratio tether pingora cpu_us_per_msg) | ≤ 1.10 |"; fi
            if has pingora_unbuffered; then echo "| Tether / bare Pingora, L4 read buffer off | $(ws_ratio tether pingora_unbuffered rss_kib_per_conn) | $(ws_ratio tether pingora_unbuffered cpu_us_per_msg) | |"; fi
            if has nginx; then echo "| Tether / NGINX | $(ws_ratio tether nginx rss_kib_per_conn) | $(ws_ratio tether nginx cpu_us_per_msg) | ≤ 1.00 |"; fi
            if has haproxy; then echo "| Tether / HAProxy | $(ws_ratio tether haproxy rss_kib_per_conn) | $(ws_ratio tether haproxy cpu_us_per_msg) | |"; fi
        fi
    } | tee "$OUT_DIR/ws.md"
    exit 0
fi

if ((CONN_MEMORY)); then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    set_pinning 1
    start_upstream
    {
        echo "# Memory per open client connection"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), tether $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
        echo "- each proxy with 1 thread; clients that sent half a request header (\`GET / HTTP/1.1\`, \`Host\`, half a field) and hold the connection; RSS 1 s after all were open, and 15 s after they closed"
        echo
        echo "| proxy | connections | RSS idle MiB | RSS with them MiB | KiB per connection | RSS 15 s after close MiB |"
        echo "|---|---:|---:|---:|---:|---:|"
        for proxy in $PROXIES; do
            [[ $proxy == pingora ]] && continue
            conn_memory "$proxy"
        done
    } | tee "$OUT_DIR/conn-memory.md"
    stop_pid "$UPSTREAM_PID" TERM
    UPSTREAM_PID=""
    exit 0
fi

# ---------------------------------------------------------------- origins (--origins)

declare -A ORIGIN_NAMES=([plain]="plain HTTP/1.1" [tls]="HTTPS (TLS 1.3, verified)" [h2c]="h2c (HTTP/2, prior knowledge)")
TETHER_H2C_MISSING=""

# Why proxy $1 is not measured to origin $ORIGIN (nothing when it is).
origin_skip() {
    if [[ $ORIGIN == h2c && $1 == tether* && -n $TETHER_H2C_MISSING ]]; then
        echo "$TETHER_H2C_MISSING"
    fi
    return 0
}

# Proxy $1's name in the origins tables (NGINX reaches an h2c origin with grpc_pass).
origin_proxy_name() {
    if [[ $ORIGIN == h2c && $1 == nginx ]]; then echo "NGINX (grpc_pass)"; else echo "${NAME[$1]}"; fi
}

origins_report() {
    local origin proxy other k skip plain_ratio rs cs
    echo "# Proxies to TLS and h2c origins"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
    echo "- tether $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(haproxy -v 2>/dev/null | head -1 | awk '{print $1, $2, $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(openssl version | awk '{print $1, $2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "- origins: one NGINX ($PIN_DESC); \`plain\`: HTTP/1.1; \`tls\`: HTTPS, TLS 1.3 only, an ECDSA P-256 certificate for \`$ORIGIN_NAME\` from a CA made by the run, verified by every proxy against that CA and name, upstream keep-alive (and TLS session reuse) on; \`h2c\`: HTTP/2 with prior knowledge on a plain port"
    echo "- load: each proxy with 1 worker thread; \`wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s --latency\`, clients with session, after a ${WARMUP_SECONDS}s warm-up; the proxy restarted for each measurement; $ROUNDS rounds interleaved (each round measures every proxy to every origin once, in the order origins $ORIGINS × proxies $PROXIES)"
    echo "- each cell: the median of the rounds (min–max); each ratio: the median of the rounds' ratios (min–max); *origin connections opened in the run*: the origins' NGINX's accepted connections (stub_status) during the measured run, so 0 means every request went over kept-alive connections"
    [[ -n $BAD_ORIGIN_NOTE ]] && echo "- verification checked: before the rounds, each proxy was pointed at an HTTPS origin whose certificate (same CA) names \`wrong.bench\` (name), then at one whose certificate for \`$ORIGIN_NAME\` comes from another CA (ca), and had to refuse both; status codes: ${BAD_ORIGIN_NOTE//:,/:}"
    [[ -n $QUIET_NOTE ]] && echo "- $QUIET_NOTE"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| origin | proxy | req/s | CPU µs/req | CPU/req vs the same proxy to plain | p50 ms | p99 ms | proxy CPU % | peak RSS MiB | origin connections opened in the run |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for origin in $ORIGINS; do
        ORIGIN=$origin
        for proxy in $PROXIES; do
            skip=$(origin_skip "$proxy")
            if [[ -n $skip ]]; then
                echo "| ${ORIGIN_NAMES[$origin]} | $(origin_proxy_name "$proxy") | $skip | | | | | | | |"
                continue
            fi
            k="1|$origin:$proxy|cookie"
            plain_ratio="-"
            if [[ $origin != plain && " $ORIGINS " == *" plain "* ]]; then
                plain_ratio=$(ratio_summary "$k" "1|plain:$proxy|cookie" cpu | show %.2f)
            fi
            echo "| ${ORIGIN_NAMES[$origin]} | $(origin_proxy_name "$proxy") | $(summary "$k" rps %.0f) | $(summary "$k" cpu %.2f) | $plain_ratio | $(median "$k" p50) | $(median "$k" p99) | $(median "$k" util) | $(median "$k" rss) | $(median "$k" conns) |"
        done
    done
    echo
    echo "| origin | ratio | req/s ratio | CPU/req ratio |"
    echo "|---|---|---:|---:|"
    for origin in $ORIGINS; do
        ORIGIN=$origin
        for proxy in $PROXIES; do
            [[ $proxy == tether* && -z $(origin_skip "$proxy") ]] || continue
            for other in haproxy nginx pingora; do
                has "$other" || continue
                rs=$(ratio_summary "1|$origin:$proxy|cookie" "1|$origin:$other|cookie" rps | show %.2f)
                cs=$(ratio_summary "1|$origin:$proxy|cookie" "1|$origin:$other|cookie" cpu | show %.2f)
                echo "| ${ORIGIN_NAMES[$origin]} | ${NAME[$proxy]} / $(origin_proxy_name "$other") | $rs | $cs |"
            done
        done
    done
    echo
    if ((${#ERRORS[@]})); then
        echo "wrk reported errors:"
        for e in "${ERRORS[@]}"; do echo "- $e"; done
    else
        echo "wrk reported no socket errors and no non-2xx responses."
    fi
}

if ((ORIGINS_MODE)); then
    set_pinning 1
    if [[ " $ORIGINS " == *" h2c "* && " $PROXIES " == *" tether"* ]]; then
        # A Tether without pools.<name>.protocol (issue 20, item 2) refuses the key: its h2c
        # cells say so instead of stopping the run.
        ORIGIN=h2c
        conf=$(write_config tether 1 "$(free_port)")
        if ! out=$("$TETHER_BIN" -t -c "$conf" 2>&1); then
            if grep -q 'protocol: unknown key' <<<"$out"; then
                TETHER_H2C_MISSING="not run: this Tether has no \`pools.<name>.protocol\`"
            else
                TETHER_H2C_MISSING="not run: \`tether -t\` refuses \`protocol: h2c\`: $(grep -m1 . <<<"$out" | sed 's/^ *//')"
            fi
            echo "   !! Tether to h2c: $TETHER_H2C_MISSING" >&2
            echo "$out" >&2
        fi
    fi
    start_upstream
    if [[ " $ORIGINS " == *" tls "* ]]; then
        echo "== every proxy verifies the origin's certificate"
        ORIGIN=tls
        # A proxy may retry a refused origin for seconds (HAProxy: \`retries 3\`, a second apart)
        # before it answers.
        PROXY_WAIT_ARGS=(--max-time 15)
        for BAD_ORIGIN in name ca; do
            BAD_ORIGIN_NOTE+="${BAD_ORIGIN_NOTE:+; }$BAD_ORIGIN:"
            for proxy in $PROXIES; do
                port=$(free_port)
                conf=$(write_config "$proxy" 1 "$port")
                start_proxy "$proxy" 1 "$port" "$conf"
                check_refuses_bad_origin "$proxy" "$port"
                stop_pid "$PROXY_PID" "$PROXY_STOP_SIG"
                PROXY_PID=""
            done
        done
        BAD_ORIGIN=""
        PROXY_WAIT_ARGS=()
    fi
    echo "== origins: $ORIGINS; 1 worker thread, $ROUNDS rounds, ${SECONDS_PER_RUN}s per run, clients with session ($PIN_DESC)"
    for ((round = 1; round <= ROUNDS; round++)); do
        echo "-- round $round of $ROUNDS"
        for origin in $ORIGINS; do
            ORIGIN=$origin
            for proxy in $PROXIES; do
                [[ -z $(origin_skip "$proxy") ]] || continue
                measure "$proxy" 1 cookie "$round"
            done
        done
    done
    stop_pid "$UPSTREAM_PID" TERM
    UPSTREAM_PID=""
    origins_report >"$OUT_DIR/origins.md"
    echo
    cat "$OUT_DIR/origins.md"
    echo
    echo "(written to $OUT_DIR/origins.md; wrk's raw output in $OUT_DIR/raw/)"
    exit 0
fi

for threads in $THREAD_COUNTS; do
    set_pinning "$threads"
    PINNING[$threads]=$PIN_DESC
    echo "== $threads worker thread(s), $ROUNDS rounds, ${SECONDS_PER_RUN}s per run ($PIN_DESC)"
    start_upstream
    for ((round = 1; round <= ROUNDS; round++)); do
        echo "-- round $round of $ROUNDS"
        for proxy in $PROXIES; do
            for kind in cookie none; do
                measure "$proxy" "$threads" "$kind" "$round"
            done
        done
    done
done
IDLE_LINE=""
if ((IDLE_CONNS > 0)) && [[ " $PROXIES " == *" tether "* ]]; then
    echo "== RSS per idle client connection: $IDLE_CONNS connections that sent nothing, 1 thread"
    set_pinning 1
    conn_rss tether "$IDLE_CONNS" idle
    IDLE_LINE=$(awk -v a="$CONN_HELD" -v b="$CONN_BASE" -v n="$IDLE_CONNS" -v base="$CONN_BASE" -v after="$CONN_AFTER" \
        'BEGIN{printf "%.1f KiB per idle client connection (Tether, 1 thread: %.1f MiB idle, %.1f MiB with %d connections open that sent nothing, %.1f MiB 15 s after they closed)", (a-b)/n, base/1024, a/1024, n, after/1024}')
    echo "   $IDLE_LINE"
fi
stop_pid "$UPSTREAM_PID" TERM
UPSTREAM_PID=""

# One row of a ratio table: Tether-like $1 against $2, clients $3, field ratios and a target
# "$4 $5 $6" (field, comparison, bound).
ratio_row() {
    local a=$1 b=$2 kind=$3 field=$4 op=$5 bound=$6 threads=$7 rs cs met value
    rs=$(ratio_summary "$threads|$a|$kind" "$threads|$b|$kind" rps)
    cs=$(ratio_summary "$threads|$a|$kind" "$threads|$b|$kind" cpu)
    if [[ $field == rps ]]; then value=${rs%% *}; else value=${cs%% *}; fi
    met=$(awk -v v="$value" -v b="$bound" -v op="$op" 'BEGIN{ if (v == "-") print "-"; else if (op == "<=") print (v <= b) ? "yes" : "no"; else print (v >= b) ? "yes" : "no" }')
    local what="CPU/req"
    [[ $field == rps ]] && what="req/s"
    echo "| ${NAME[$a]} vs ${NAME[$b]} | ${KIND[$kind]} | $(show %.2f <<<"$rs") | $(show %.2f <<<"$cs") | $what $op $bound | $met |"
}

report() {
    local threads kind proxy k
    echo "# Tether benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- tether $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(haproxy -v 2>/dev/null | head -1 | awk '{print $1, $2, $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "- load: \`wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s --latency\` after a ${WARMUP_SECONDS}s warm-up; the proxy restarted for each measurement; $ROUNDS rounds interleaved (each round measures every proxy once, in the order $PROXIES)"
    echo "- each cell: the median of the rounds (min–max); each ratio: the median of the rounds' ratios (min–max)"
    [[ -n $QUIET_NOTE ]] && echo "- $QUIET_NOTE"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    [[ -n $IDLE_LINE ]] && echo "- memory: $IDLE_LINE"
    for threads in $THREAD_COUNTS; do
        echo
        echo "## $threads worker thread(s) — ${PINNING[$threads]}"
        echo
        echo "| proxy | clients | req/s | CPU µs/req | p50 ms | p99 ms | proxy CPU % | peak RSS MiB |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|"
        for proxy in $PROXIES; do
            for kind in cookie none; do
                k="$threads|$proxy|$kind"
                echo "| ${NAME[$proxy]} | ${KIND[$kind]} | $(summary "$k" rps %.0f) | $(summary "$k" cpu %.2f) | $(median "$k" p50) | $(median "$k" p99) | $(median "$k" util) | $(median "$k" rss) |"
            done
        done
        if has tether; then
            echo
            echo "| ratio | clients | req/s ratio | CPU/req ratio | target | met |"
            echo "|---|---|---:|---:|---|---|"
            for kind in cookie none; do
                has pingora && ratio_row tether pingora "$kind" cpu "<=" 1.00 "$threads"
                has haproxy && ratio_row tether haproxy "$kind" rps ">=" 0.60 "$threads"
                has nginx && ratio_row tether nginx "$kind" rps ">=" 0.60 "$threads"
                has tether_nolog && ratio_row tether tether_nolog "$kind" cpu "<=" 1.05 "$threads"
                if has tether_nolog && has pingora; then ratio_row tether_nolog pingora "$kind" cpu "<=" 1.00 "$threads"; fi
            done
        fi
    done
    echo
    if ((${#ERRORS[@]})); then
        echo "wrk reported errors:"
        for e in "${ERRORS[@]}"; do echo "- $e"; done
    else
        echo "wrk reported no socket errors and no non-2xx responses."
    fi
}

report >"$RESULTS"
echo
cat "$RESULTS"
echo
echo "(written to $RESULTS; wrk's raw output in $OUT_DIR/raw/)"
