#!/usr/bin/env bash
# Hot upgrade of a running Tether: new binary and/or new configuration, without dropping a
# connection or a request (Pingora's socket hand-over). docs/operations.md, "Hot upgrade".
#
#   scripts/upgrade.sh -c CONF [--bin PATH] [--pid-file FILE] [--timeout SECONDS]
#
#   1. `tether -t -c CONF` must pass; otherwise print its errors and stop: the running
#      tether is not touched.
#   2. The running tether's pid comes from the pid file (CONF's `pid_file`, or --pid-file).
#   3. Start the new binary: `tether -u -d -c CONF`. It loads CONF, then listens on
#      `upgrade_sock` and waits (about 6 s at most) for the old process's listening sockets.
#   4. When the upgrade socket appears, SIGQUIT the old process: it hands its listening
#      sockets over and keeps accepting for 5 s (Pingora's close timeout) alongside the new one.
#   5. The new process, holding the sockets, daemonizes and writes its pid into the pid file
#      (the old pid moves to FILE.old); wait for that new pid.
#   6. The old process stops accepting, finishes its in-flight requests within
#      `grace_period_seconds`, waits at most `graceful_shutdown_timeout_seconds`, and exits;
#      wait for that (bounded), printing progress.
#
# Exit status 0: the new process serves and the old one has exited. Anything else: a message
# saying what failed and which process serves. Every wait here is bounded.
# Run it as the user tether runs as (or root), with the same working directory as the start
# (relative paths inside CONF are resolved against it). It never sends SIGHUP (Pingora has
# no handler for it: SIGHUP would kill tether).
set -euo pipefail

# How long the new process may take to load CONF and open the upgrade socket (s).
START_WAIT=30
# How long the hand-over may take once the old process has SIGQUIT (s); Pingora retries
# the socket transfer for about 6 s on each side.
HANDOVER_WAIT=20
# How long the daemonized new process may take to write its pid (s).
PIDFILE_WAIT=10
# Pingora's old process keeps accepting this long after SIGQUIT (CLOSE_TIMEOUT, s).
CLOSE_TIMEOUT=5

me=upgrade.sh

usage() {
    cat <<EOF
usage: $0 -c CONF [--bin PATH] [--pid-file FILE] [--timeout SECONDS]
  -c, --conf FILE     the configuration the new process runs with (validated first)
  --bin PATH          the tether binary to start (default: tether on PATH, else /usr/local/bin/tether)
  --pid-file FILE     where the running tether's pid is (default: CONF's pid_file, else /tmp/pingora.pid)
  --timeout SECONDS   how long to wait for the old process to exit after SIGQUIT
                      (default: $CLOSE_TIMEOUT + grace_period_seconds + graceful_shutdown_timeout_seconds + 10, from CONF)
EOF
}

say() { printf '%s: %s\n' "$me" "$*"; }
die() {
    printf '%s: FAILED: %s\n' "$me" "$*" >&2
    exit 1
}

CONF=
BIN=
PID_FILE=
OLD_TIMEOUT=
while [[ $# -gt 0 ]]; do
    case "$1" in
        -c | --conf)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            CONF=$2
            shift 2
            ;;
        --bin)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            BIN=$2
            shift 2
            ;;
        --pid-file)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            PID_FILE=$2
            shift 2
            ;;
        --timeout)
            [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
            OLD_TIMEOUT=$2
            shift 2
            ;;
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
[[ -n $CONF ]] || { usage >&2; exit 2; }
[[ -r $CONF ]] || die "cannot read the configuration file $CONF"
if [[ -z $BIN ]]; then
    BIN=$(command -v tether 2>/dev/null || echo /usr/local/bin/tether)
fi
[[ -x $BIN ]] || die "no tether binary at $BIN (use --bin PATH)"

# The value of a top-level key of CONF (`key: value`, quoted or not, trailing comment
# removed), or nothing if absent. Only the block style Tether's examples use is read.
conf_value() {
    local line v
    line=$(grep -E "^$1:" "$CONF" | tail -n 1) || return 0
    v=${line#*:}
    v=${v#"${v%%[![:space:]]*}"}
    if [[ $v =~ ^\"([^\"]*)\" ]]; then
        v=${BASH_REMATCH[1]}
    elif [[ $v =~ ^\'([^\']*)\' ]]; then
        v=${BASH_REMATCH[1]}
    else
        v=${v%%#*}
        v=${v%"${v##*[![:space:]]}"}
    fi
    [[ $v == "~" || $v == null ]] && v=
    printf '%s' "$v"
}

# Whether `pid` is a live process (an exited one not yet reaped by its parent is not).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r /proc/$1/stat ]]; then
        state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
        [[ $state != Z ]]
    fi
}

# The pid written in a pid file, or nothing.
read_pid() {
    local p
    p=$(tr -d '[:space:]' <"$1" 2>/dev/null) || return 0
    [[ $p =~ ^[0-9]+$ ]] && printf '%s' "$p"
    return 0
}

# 1. Validate the new configuration before touching anything.
if ! check=$("$BIN" -t -c "$CONF" 2>&1); then
    printf '%s\n' "$check" >&2
    die "$CONF does not validate (above); nothing was changed: the running tether keeps serving with its current configuration"
fi
say "$CONF: configuration OK"

# 2. The running process.
[[ -n $PID_FILE ]] || PID_FILE=$(conf_value pid_file)
[[ -n $PID_FILE ]] || PID_FILE=/tmp/pingora.pid
UPGRADE_SOCK=$(conf_value upgrade_sock)
[[ -n $UPGRADE_SOCK ]] || UPGRADE_SOCK=/tmp/pingora_upgrade.sock
# A daemon runs in / (Pingora's default working_directory), so relative paths would not
# name the same files for the old and the new process.
[[ $PID_FILE == /* ]] || die "pid file $PID_FILE is not an absolute path (set pid_file to one, or use --pid-file)"
[[ $UPGRADE_SOCK == /* ]] || die "upgrade_sock $UPGRADE_SOCK is not an absolute path"
[[ -e $PID_FILE ]] || die "no pid file at $PID_FILE: is tether running (started with -d)? start it with: $BIN -d -c $CONF"
OLD=$(read_pid "$PID_FILE")
[[ -n $OLD ]] || die "$PID_FILE does not hold a pid"
alive "$OLD" || die "no tether runs as pid $OLD (from $PID_FILE); start it with: $BIN -d -c $CONF"
say "running tether: pid $OLD (from $PID_FILE)"

if [[ -z $OLD_TIMEOUT ]]; then
    grace=$(conf_value grace_period_seconds)
    shutdown=$(conf_value graceful_shutdown_timeout_seconds)
    [[ $grace =~ ^[0-9]+$ ]] || grace=300
    [[ $shutdown =~ ^[0-9]+$ ]] || shutdown=5
    OLD_TIMEOUT=$((CLOSE_TIMEOUT + grace + shutdown + 10))
fi

# One upgrade at a time (the lock is released when this script ends).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$UPGRADE_SOCK.lock"
    flock -n 9 || die "another upgrade holds $UPGRADE_SOCK.lock; nothing was changed"
fi

# 3. Start the new process. A socket file left by an earlier, failed upgrade would look
# like the new process's: remove it first (the new process re-creates it).
rm -f "$UPGRADE_SOCK"
start=$SECONDS
"$BIN" -u -d -c "$CONF" 9>&- &
launcher=$!
say "started the new tether: $BIN -u -d -c $CONF (launcher pid $launcher)"

# The old process has not been signalled yet: on any failure here it keeps serving.
stop_launcher() {
    if alive "$launcher"; then
        kill -TERM "$launcher" 2>/dev/null || true
        wait "$launcher" 2>/dev/null || true
    fi
}
ticks=$((START_WAIT * 10))
while [[ ! -S $UPGRADE_SOCK ]]; do
    if ! alive "$launcher"; then
        rc=0
        wait "$launcher" || rc=$?
        die "the new tether exited (status $rc) before it was ready to take the sockets over; the old tether (pid $OLD) is still serving, unchanged"
    fi
    ticks=$((ticks - 1))
    if [[ $ticks -le 0 ]]; then
        stop_launcher
        die "the new tether did not open $UPGRADE_SOCK within ${START_WAIT}s (stopped it); the old tether (pid $OLD) is still serving, unchanged"
    fi
    sleep 0.1
done
say "the new tether waits on $UPGRADE_SOCK"

# 4. Hand the sockets over.
if ! kill -QUIT "$OLD" 2>/dev/null; then
    stop_launcher
    die "cannot send SIGQUIT to the old tether (pid $OLD): it has exited or is not ours; nothing may be serving now: start tether with: $BIN -d -c $CONF"
fi
say "sent SIGQUIT to the old tether (pid $OLD): it hands its listening sockets over"

# 5. The launcher returns once the new process holds the sockets and has daemonized.
after_quit="the old tether (pid $OLD) was already told to quit: it stops accepting ${CLOSE_TIMEOUT}s after SIGQUIT and exits after its grace period; start tether again now with: $BIN -d -c $CONF"
ticks=$((HANDOVER_WAIT * 10))
while alive "$launcher"; do
    ticks=$((ticks - 1))
    if [[ $ticks -le 0 ]]; then
        stop_launcher
        die "the new tether did not take the sockets over within ${HANDOVER_WAIT}s (stopped it); $after_quit"
    fi
    sleep 0.1
done
rc=0
wait "$launcher" || rc=$?
[[ $rc -eq 0 ]] || die "the new tether failed to take the sockets over (status $rc); $after_quit"

NEW=
ticks=$((PIDFILE_WAIT * 10))
while :; do
    NEW=$(read_pid "$PID_FILE")
    if [[ -n $NEW && $NEW != "$OLD" ]] && alive "$NEW"; then
        break
    fi
    ticks=$((ticks - 1))
    if [[ $ticks -le 0 ]]; then
        die "the new tether did not write a live pid into $PID_FILE within ${PIDFILE_WAIT}s (found: ${NEW:-nothing}); $after_quit"
    fi
    sleep 0.1
done
say "the new tether (pid $NEW) holds the listening sockets and serves"

# 6. The old process drains and exits.
say "waiting for the old tether (pid $OLD) to finish its in-flight requests and exit (at most ${OLD_TIMEOUT}s)"
ticks=$((OLD_TIMEOUT * 10))
waited=0
while alive "$OLD"; do
    ticks=$((ticks - 1))
    if [[ $ticks -le 0 ]]; then
        die "the old tether (pid $OLD) still runs ${OLD_TIMEOUT}s after SIGQUIT (it no longer accepts connections; the new tether, pid $NEW, serves); stop it with: kill -TERM $OLD"
    fi
    sleep 0.1
    waited=$((waited + 1))
    if [[ $((waited % 50)) -eq 0 ]]; then
        say "  ... old tether (pid $OLD) still draining after $((waited / 10))s"
    fi
done
alive "$NEW" || die "the new tether (pid $NEW) exited while the old one drained: nothing serves; start tether with: $BIN -d -c $CONF"
say "upgrade done in $((SECONDS - start))s: tether pid $NEW serves $CONF; pid $OLD has exited"
