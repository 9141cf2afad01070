# Helpers shared by scripts/demo.sh and bench.sh (sourced, not run).
# Every wait here is bounded.

# port_open HOST PORT: does HOST:PORT accept a TCP connection?
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT PID LOG: bounded poll (15 s) until HOST:PORT accepts; fails if PID exits.
wait_port() {
    local host=$1 port=$2 pid=$3 log=$4 i
    for ((i = 0; i < 150; i++)); do
        if port_open "$host" "$port"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: the process for $host:$port (pid $pid) exited; last lines of $log:" >&2
            tail -n 30 "$log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "error: nothing accepts on $host:$port after 15 s; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    return 1
}

# stop_and_reap PID TENTHS: waits (bounded: TENTHS tenths of a second) for PID to exit,
# SIGKILL after that, then reaps it.
stop_and_reap() {
    local pid=$1 tenths=$2 i
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "  pid $pid still running; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
