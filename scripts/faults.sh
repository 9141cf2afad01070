#!/usr/bin/env bash
# Tether's faults under load, for a person to watch: runs the fault tests of
# tests/faults.rs on the release build, the #[ignore]d long ones included, one at a
# time, and prints the figures each test prints.
#
#   scripts/faults.sh                         release build, every fault test (~2 minutes
#                                             after the build)
#   FAULTS_PROFILE=debug scripts/faults.sh    the debug build instead
#   scripts/faults.sh <filter>                only the tests whose names contain <filter>
#                                             (e.g. long_, killed, flood)
#
# What the tests do and what they require: docs/testing.md, "Faults under load".
# Exit status: cargo test's (0 when every promise held).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

PROFILE="${FAULTS_PROFILE:-release}"
case "$PROFILE" in
    release) PROFILE_FLAG=(--release) ;;
    debug) PROFILE_FLAG=() ;;
    *)
        echo "FAULTS_PROFILE must be release or debug, got $PROFILE" >&2
        exit 2
        ;;
esac
FILTER=("$@")

echo "== building ($PROFILE): cargo test ${PROFILE_FLAG[*]} --test faults --no-run"
cargo test "${PROFILE_FLAG[@]}" --test faults --no-run

echo "== running the fault tests, the long ones included, one at a time"
# --include-ignored: the long_* variants are #[ignore]d in the normal test run.
# The figures are the tests' own println! lines (--nocapture); the pass/fail lines
# follow them.
cargo test "${PROFILE_FLAG[@]}" --test faults -- \
    --include-ignored --nocapture --test-threads 1 "${FILTER[@]}"
