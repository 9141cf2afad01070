#!/usr/bin/env bash
# Issue 9's figures on three replicas, with and without tether.cluster: header sessions
# split after a failure and recovery, re-pinned sessions kept by a restarted replica,
# how long a drain takes to be in force everywhere, how a dead endpoint's cookie
# sessions spread, and requests failed while Redis is killed under load.
# Runs tests/cluster.rs's measure_replicas (a real redis-server; installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "replicas.sh: please install redis-server" >&2
        exit 1
    fi
fi
cargo test ${PROFILE:+--profile "$PROFILE"} --test cluster -- --ignored --nocapture --test-threads 1 measure_replicas 2>&1 \
    | grep -oE '(with|without) cluster:.*|version 1 cookies.*|test result.*|panicked.*'
