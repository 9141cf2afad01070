#!/usr/bin/env bash
# `systemctl reload tether` (conf/tether.service's ExecReload=): reload in place, or a hot
# upgrade when that is what the change needs. docs/operations.md, "Reload".
#
#   scripts/reload.sh -c CONF --pid PID [--bin PATH] [--upgrade-flag FILE]
#
#   1. `tether -t -c CONF` must pass; otherwise print its errors and stop: the running
#      tether is not touched.
#   2. A hot upgrade (upgrade.sh, beside this script) when the running process's binary is
#      not the one at PATH any more (replaced on disk: /proc/PID/exe reads "(deleted)" or
#      points elsewhere), or when FILE exists (touch it first to make a reload carry new
#      listeners or threads; it is removed).
#   3. Otherwise SIGHUP: the same process re-reads the tether: section (docs/operations.md).
set -euo pipefail

me=reload.sh
say() { printf '%s: %s\n' "$me" "$*"; }
die() {
    printf '%s: FAILED: %s\n' "$me" "$*" >&2
    exit 1
}

CONF=
PID=
BIN=
FLAG=
while [[ $# -gt 0 ]]; do
    case $1 in
        -c | --conf) CONF=${2:?}; shift 2 ;;
        --pid) PID=${2:?}; shift 2 ;;
        --bin) BIN=${2:?}; shift 2 ;;
        --upgrade-flag) FLAG=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n $CONF && -n $PID ]] || die "-c CONF and --pid PID are needed (see --help)"
[[ -n $BIN ]] || BIN=$(command -v tether || echo /usr/local/bin/tether)
kill -0 "$PID" 2>/dev/null || die "no process $PID"

if ! errors=$("$BIN" -t -c "$CONF" 2>&1); then
    printf '%s\n' "$errors" >&2
    die "$CONF does not validate; the running tether ($PID) is untouched"
fi

exe=$(readlink "/proc/$PID/exe" 2>/dev/null || true)
if [[ -n $FLAG && -e $FLAG ]] || [[ $exe == *" (deleted)" ]] || [[ -n $exe && $exe != "$(readlink -f "$BIN")" ]]; then
    [[ -n $FLAG ]] && rm -f "$FLAG"
    say "hot upgrade: the running binary is ${exe:-unknown}, the new one $BIN"
    exec "$(dirname "$0")/upgrade.sh" -c "$CONF" --bin "$BIN"
fi
kill -HUP "$PID"
say "SIGHUP sent to $PID: it reloads $CONF in place"
