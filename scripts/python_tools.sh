# Sourced by scripts/{realtime,grpc,cloudflare}_tools.sh: one pinned Python virtualenv
# under target/ for a test's real clients and servers from PyPI.
#
#   python_tools NAME WHAT PIN...
#
# makes target/NAME-venv with the pins. Idempotent and cheap when done: a stamp file
# (target/NAME-tools.stamp) records the pins installed (with $EXTRA_STAMP, if set), and
# nothing is fetched while it matches. An optional function `extra_ready` says whether
# the caller's other tools are in place and `extra_install` installs them (npm, for
# one). Installs python3-venv with apt-get only when it is missing and we are root; WHAT
# says in the refusal otherwise who needs it. One run at a time per NAME (cargo runs test
# binaries in parallel). Prints the venv's python on the last line.
python_tools() {
    local name=$1 what=$2
    shift 2
    local target="${CARGO_TARGET_DIR:-target}"
    local venv="$target/$name-venv"
    local stamp="$target/$name-tools.stamp"
    local stamp_text="$*${EXTRA_STAMP:+ | $EXTRA_STAMP}"
    mkdir -p "$target"
    exec 9>"$target/$name-tools.lock"
    flock -w 600 9 || { echo "${name}_tools.sh: lock busy for 10 minutes" >&2; exit 1; }
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$stamp_text" ] ||
        [ ! -x "$venv/bin/python" ] ||
        { declare -F extra_ready >/dev/null && ! extra_ready; }; then
        command -v python3 >/dev/null 2>&1 || apt_install "$name" "$what" python3 python3-venv
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            apt_install "$name" "$what" python3-venv
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
        if declare -F extra_install >/dev/null; then
            extra_install
        fi
        echo "$stamp_text" >"$stamp"
    fi
    echo "$(cd "$venv/bin" && pwd)/python"
}

# apt_install NAME WHAT PACKAGE...: as root with apt-get, installs; otherwise says what
# to install and why, and exits 1.
apt_install() {
    local name=$1 what=$2
    shift 2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "${name}_tools.sh: installing $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "${name}_tools.sh: please install: $* ($what)" >&2
        exit 1
    fi
}
