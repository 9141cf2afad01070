#!/usr/bin/env bash
# Keeps README.md and docs/*.md from going stale against the code. No network, no sleeps;
# every tether run is bounded by `timeout`.
#
#   scripts/docs_check.sh                       uses target/debug/tether
#   TETHER_BIN=target/release/tether scripts/docs_check.sh
#
# Checks, each counted once per item:
#   yaml   every ```yaml block that is a whole file (a `tether:` key at the top level) passes
#          `tether -t -c FILE` and prints "configuration OK" (run from the repository root, so
#          the block may name conf/example-cert.pem and the other files in conf/; endpoints
#          should be IP addresses, since a host name would be resolved);
#   path   every scripts/, conf/, examples/, src/, tests/ and benches/ path named exists;
#   link   every relative markdown link (inline, or a reference definition) resolves (a #anchor
#          must be a heading of its target), and none leaves the repository: a relative path
#          outside its root (../shared/...), an absolute path or another scheme (file:) fails,
#          since a clone has no such file; http(s) and mailto links are allowed, not followed;
#   flag   every flag shown after a `tether` command, and every flag in a table whose first
#          column is headed "tether flag", is listed by `tether --help`;
#   key    every key in the tables of docs/configuration.md, prefixed by the `tether...` path
#          of the heading above its table, is used in conf/tether.yaml (<name> matches any
#          map key, [] any list item).
# One line per failure, then `docs check: N checked, M failed`; exit status 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${TETHER_BIN:-target/debug/tether}
docs=(README.md)
while IFS= read -r f; do docs+=("$f"); done < <(find docs -name '*.md' | sort)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

checked=0
failed=0
ok() { checked=$((checked + 1)); }
fail() {
    checked=$((checked + 1))
    failed=$((failed + 1))
    echo "FAIL $*"
}

if [ ! -x "$bin" ]; then
    echo "FAIL no tether binary at $bin (build it, or set TETHER_BIN)"
    echo "docs check: 0 checked, 1 failed"
    exit 1
fi
run_bounded() {
    if command -v timeout >/dev/null 2>&1; then timeout 20 "$@"; else "$@"; fi
}

# --- yaml: whole configuration files shown in the docs pass `tether -t` ---------------------
for doc in "${docs[@]}"; do
    # Split the ```yaml blocks of $doc into $tmp/block.N, each first line "LINE <n>".
    rm -f "$tmp"/block.*
    awk -v out="$tmp/block." '
        /^[ \t]*```/ {
            if (inblock) { inblock = 0; close(file); next }
            if ($0 ~ /^```yaml[ \t]*$/) { n++; inblock = 1; file = out n; print "LINE " NR + 1 > file; next }
        }
        inblock { print > file }
    ' "$doc"
    for block in "$tmp"/block.*; do
        [ -e "$block" ] || continue
        line=$(head -n 1 "$block" | cut -d' ' -f2)
        tail -n +2 "$block" >"$tmp/conf.yaml"
        grep -q '^tether:' "$tmp/conf.yaml" || continue
        if out=$(run_bounded "$bin" -t -c "$tmp/conf.yaml" 2>&1) && grep -qx 'configuration OK' <<<"$out"; then
            ok
        else
            fail "yaml $doc:$line: tether -t does not accept this file: $(tr '\n' ' ' <<<"$out" | sed 's/  */ /g')"
        fi
    done
done

# --- path: files named in the docs exist ----------------------------------------------------
for doc in "${docs[@]}"; do
    while IFS=: read -r line path; do
        path=${path%.}  # a sentence's full stop
        if [ -e "$path" ]; then ok; else fail "path $doc:$line: $path does not exist"; fi
    done < <(grep -noE '(^|[^A-Za-z0-9_./-])(scripts|conf|examples|src|tests|benches)/[A-Za-z0-9_./-]*[A-Za-z0-9_-]' "$doc" |
        sed -E 's/^([0-9]+):[^a-z]?/\1:/' | sort -t: -k2 -u)
done

# --- link: relative markdown links and their anchors resolve --------------------------------
# GitHub's heading anchors (ASCII): lower-case, drop what is not a letter, digit, space, "_"
# or "-", spaces to "-"; a repeated heading gets -1, -2, ...
anchors() {
    awk '/^```/ { code = !code; next } !code && /^#+ / { sub(/^#+ +/, ""); print }' "$1" |
        tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g' |
        awk '{ if (seen[$0]++) print $0 "-" seen[$0] - 1; else print }'
}
for doc in "${docs[@]}"; do
    dir=$(dirname "$doc")
    while IFS=: read -r line target; do
        case $target in http://* | https://* | mailto:*) continue ;; esac
        if [[ $target == /* || $target =~ ^[A-Za-z][A-Za-z0-9+.-]*: ]]; then
            fail "link $doc:$line: ($target) leaves the repository: only relative paths inside it, http(s) and mailto"
            continue
        fi
        file=${target%%#*}
        anchor=
        [[ $target == *#* ]] && anchor=${target#*#}
        if [ -z "$file" ]; then
            resolved=$doc
        else
            resolved=$(realpath -m "$dir/$file")
            case $resolved in
                "$root") resolved=. ;;
                "$root"/*) resolved=${resolved#"$root"/} ;;
                *)
                    fail "link $doc:$line: ($target) leaves the repository: a clone has no $resolved"
                    continue
                    ;;
            esac
        fi
        if [ ! -e "$resolved" ]; then
            fail "link $doc:$line: ($target) does not resolve"
        elif [ -n "$anchor" ] && [[ $resolved == *.md ]] && ! anchors "$resolved" | grep -qxF -- "$anchor"; then
            fail "link $doc:$line: ($target): no heading #$anchor in $resolved"
        else
            ok
        fi
    done < <(awk '/^[ \t]*```/ { code = !code; next }
                  !code { s = $0
                          # a reference definition: [name]: target
                          if (match(s, /^ ? ? ?\[[^]]+\]:[ \t]*<?[^ \t>]+/)) {
                              t = substr(s, RSTART, RLENGTH); sub(/^[^]]*\]:[ \t]*<?/, "", t)
                              print NR ":" t; next }
                          while (match(s, /\]\([^) ]+\)/)) {
                              print NR ":" substr(s, RSTART + 2, RLENGTH - 3); s = substr(s, RSTART + RLENGTH) } }' "$doc")
done

# --- flag: tether flags shown in the docs exist ---------------------------------------------
help=$(run_bounded "$bin" --help 2>&1 || true)
flags_file="$tmp/flags"
: >"$flags_file"
for doc in "${docs[@]}"; do
    awk -v doc="$doc" '
        # Rows of a table headed "| tether flag |": every -x / --xx in the first column.
        /^\|/ {
            split($0, col, "|")
            if (col[2] ~ /tether flag/) { intable = 1; next }
            if (intable) {
                s = col[2]
                while (match(s, /(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z-]*/)) {
                    f = substr(s, RSTART, RLENGTH); sub(/^[^-]/, "", f)
                    print doc ":" NR ":" f
                    s = substr(s, RSTART + RLENGTH)
                }
                next
            }
        }
        !/^\|/ { intable = 0 }
        # Commands: `tether` (or a path ending in /tether) followed by flags; -c takes a value.
        {
            s = $0
            while (match(s, /(^|[ `(\/])tether( +[^ `|;&)]+)+/)) {
                cmd = substr(s, RSTART, RLENGTH)
                s = substr(s, RSTART + RLENGTH)
                sub(/^.?tether +/, "", cmd)
                n = split(cmd, w, / +/)
                for (i = 1; i <= n; i++) {
                    if (w[i] ~ /^--?[A-Za-z]/) {
                        print doc ":" NR ":" w[i]
                        if (w[i] == "-c" || w[i] == "--conf") i++
                    } else break
                }
            }
        }
    ' "$doc" >>"$flags_file"
done
while IFS=: read -r doc line flag; do
    if grep -qE -- "(^|[ ,])${flag}([ ,=]|\$)" <<<"$help"; then ok; else fail "flag $doc:$line: $flag is not in tether --help"; fi
done < <(sort -t: -k3,3 -k1,1 -u "$flags_file")

# --- key: the keys of docs/configuration.md's tables are used in conf/tether.yaml ------------
# conf/tether.yaml's key paths, "/"-separated, list items as "[]".
awk '
    function emit(path) { print path }
    function flow(path, s,    k) {
        while (match(s, /[{,][ \t]*("[^"]*"|[A-Za-z0-9_.*-]+):/)) {
            k = substr(s, RSTART, RLENGTH); sub(/^[{,][ \t]*/, "", k); sub(/:$/, "", k); gsub(/"/, "", k)
            emit(path "/" k)
            s = substr(s, RSTART + RLENGTH)
        }
    }
    {
        line = $0
        # drop comments (a "#" at the start or after a space, outside quotes)
        out = ""; q = ""
        for (i = 1; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (q != "") { if (c == q) q = ""; out = out c; continue }
            if (c == "\"" || c == "'\''") { q = c; out = out c; continue }
            if (c == "#" && (i == 1 || substr(line, i - 1, 1) ~ /[ \t]/)) break
            out = out c
        }
        line = out
        if (line ~ /^[ \t]*$/) next
        match(line, /^ */); ind = RLENGTH; rest = substr(line, ind + 1)
        if (rest ~ /^- /) {
            while (depth > 0 && sind[depth] >= ind) depth--
            depth++; sind[depth] = ind; sname[depth] = "[]"
            ind += 2; rest = substr(rest, 3)
        }
        if (rest ~ /^\{/) {  # a list item written as a flow mapping: its keys
            path = ""
            for (d = 1; d <= depth; d++) path = path (sname[d] == "[]" ? "[]" : (path == "" ? "" : "/") sname[d])
            flow(path, rest)
            next
        }
        if (!match(rest, /^("[^"]*"|[A-Za-z0-9_.*-]+):( |$)/)) next
        key = substr(rest, 1, RLENGTH); sub(/: ?$/, "", key); gsub(/"/, "", key)
        value = substr(rest, RLENGTH + 1)
        while (depth > 0 && sind[depth] >= ind) depth--
        path = ""
        for (d = 1; d <= depth; d++) path = path (sname[d] == "[]" ? "[]" : (path == "" ? "" : "/") sname[d])
        path = path (path == "" ? "" : "/") key
        emit(path)
        depth++; sind[depth] = ind; sname[depth] = key
        # a flow mapping on the same line: its keys are children
        if (value ~ /^[ \t]*\{/) flow(path, value)
    }
' conf/tether.yaml >"$tmp/conf_paths"
awk '
    /^```/ { code = !code; next }
    code { next }
    /^#+ / {
        prefix = ""
        if (match($0, /^#+ `tether[^`]*`[ \t]*$/)) {
            prefix = $0; sub(/^#+ `/, "", prefix); sub(/`[ \t]*$/, "", prefix); sub(/:$/, "", prefix)
        }
        next
    }
    prefix != "" && /^\| *`/ {
        split($0, col, "|"); s = col[2]
        while (match(s, /`[^`]+`/)) {
            k = substr(s, RSTART + 1, RLENGTH - 2)
            s = substr(s, RSTART + RLENGTH)
            print NR ":" prefix "." k
        }
    }
' docs/configuration.md >"$tmp/doc_keys"
while IFS=: read -r line key; do
    # to a regex over "/"-separated paths: <name> is any one key, [] is a list item
    re=$(sed -E 's/\./\//g; s/[][\\^$*+?(){}|]/\\&/g; s/<[^>]*>/[^\/]+/g' <<<"$key")
    if grep -qE "^${re}\$" "$tmp/conf_paths"; then
        ok
    else
        fail "key docs/configuration.md:$line: $key is not used in conf/tether.yaml"
    fi
done <"$tmp/doc_keys"

echo "docs check: $checked checked, $failed failed"
[ "$failed" -eq 0 ]
