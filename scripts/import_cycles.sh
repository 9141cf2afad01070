#!/usr/bin/env bash
# No import cycles between the files of src/, and no arrow running back up the floors of
# docs/design.md (issue 18; described in docs/testing.md).
# The file-level import graph: `use` trees and `crate::` / `super::` / `self::` paths in code,
# each name followed through `pub use` re-exports to the file defining it. Not arrows: comments,
# `mod x;`, a re-export its file does not use, `#[cfg(test)]` items and test-only files, and a
# file naming the mod.rs of its own folder (a module's parts share its root; `--strict` counts
# those too).
# Floors: FLOORS below gives every folder of src/ (or one file, the longest entry wins) a floor,
# from the ground (0) up; a file may import files on its own floor or below, never above.
# Exit 1 listing cycles if a strongly connected component holds more than one file, listing
# each arrow running up (and each file on no floor), else 0. `--arrows` prints the graph instead.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import pathlib, re, sys

# The floors of docs/design.md ("The floors"), from the ground up. Keep the two in step.
FLOORS = {
    # 0, the ground: one-job leaves and the vocabulary every room shares
    "clock.rs": 0, "text.rs": 0, "logging.rs": 0, "cli.rs": 0,
    "config/model.rs": 0, "config/spelling.rs": 0, "affinity/decision.rs": 0,
    # 1: pure decisions, recording, the rules language, the access log's lines
    "balance": 1, "metrics": 1, "rules": 1, "access_log": 1,
    "config": 2,  # the readers of the file (rules' conditions parsed by rules/parse.rs, below)
    "affinity": 3, "cloudflare": 3,
    "state": 4,
    "route": 5,
    "changes": 6, "cluster": 6,
    "health": 7, "services": 7, "front_door": 7, "proxy": 7, "admin": 7,
    "lib.rs": 8, "main.rs": 8,
}

def floor_of(p):  # the floor of file p: its longest entry in FLOORS (a file, or a folder holding it)
    rel = p.relative_to("src").as_posix()
    hits = [k for k in FLOORS if rel == k or rel.startswith(k + "/")]
    return FLOORS[max(hits, key=len)] if hits else None

ITEM = r"\b(?:struct|enum|union|trait|type|fn|const|static|mod|macro_rules!)\s+{}\b"
TEST_MOD = re.compile(r'#\[cfg\(test\)\]\s*(?:#\[path\s*=\s*"([^"]+)"\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;')

def module_of(p):  # src/a/b.rs and src/a/b/mod.rs -> ("a", "b"); lib.rs, main.rs -> ()
    parts = p.relative_to("src").with_suffix("").parts
    return () if parts in (("lib",), ("main",)) else parts[:-1] if parts[-1] == "mod" else parts

def strip(text):  # drop comments, then every #[cfg(test)] item (a `mod x;` line or a braced block)
    text = re.sub(r"(?m)(^|\s)//.*$", r"\1", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    while (at := text.find("#[cfg(test)]")) >= 0:
        end, depth = at + len("#[cfg(test)]"), 0
        while end < len(text):
            c, end = text[end], end + 1
            if c == ";" and depth == 0: break
            depth += (c == "{") - (c == "}")
            if c == "}" and depth == 0: break
        text = text[:at] + text[end:]
    return text

def expand(tree):  # "a::{b, c::{d as e, self}}" -> ["a::b", "a::c::d", "a::c"]
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    if "{" not in tree:
        return [tree.removesuffix("::self")]
    head, body = tree[: tree.index("{")], tree[tree.index("{") + 1 : tree.rindex("}")]
    parts, depth, split = [], 0, 0
    for i, c in enumerate(body + ","):
        depth += (c == "{") - (c == "}")
        if c == "," and depth == 0:
            parts += [head + q for q in expand(body[split:i])] if body[split:i] else []
            split = i + 1
    return [q.removesuffix("::self") for q in parts]

STRICT = "--strict" in sys.argv
files = {p: p.read_text() for p in sorted(pathlib.Path("src").rglob("*.rs"))}
test_only = set()
for p, text in files.items():
    for path, name in TEST_MOD.findall(re.sub(r"(?m)^\s*//.*$", "", text)):
        test_only.add(p.parent / path if path else module_of(p) + (name,))
files = {p: strip(t) for p, t in files.items() if p not in test_only
         and not any(module_of(p)[: len(m)] == m for m in test_only if isinstance(m, tuple))}
modules = {module_of(p): p for p in files if p.name != "main.rs"}
USE = re.compile(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
uses = {p: [(pub, q) for pub, tree in USE.findall(t)
            for q in expand(tree)] for p, t in files.items()}

def defines(f, name):  # does file f define an item called name?
    return re.search(ITEM.format(re.escape(name)), files[f])

def walk(p, path):  # (the module a path used in file p reaches, the names left); None: another crate
    segs, here = path.split("::"), module_of(p)
    if segs[0] in ("crate", "tether"):
        here, segs = (), segs[1:]
    elif segs[0] not in ("super", "self") and here + (segs[0],) not in modules:
        return None  # std, serde, a local name...
    while segs and segs[0] in ("super", "self"):
        here, segs = (here[:-1] if segs[0] == "super" else here), segs[1:]
    while segs and here + (segs[0],) in modules:
        here, segs = here + (segs[0],), segs[1:]
    return here, [s for s in segs if s != "*"]

def resolve(p, path, seen=frozenset()):  # the file defining what a path used in file p names
    if (reached := walk(p, path)) is not None:
        here, segs = reached
        return defining(here, segs[0], seen) if segs else modules.get(here)

def defining(module, name, seen):  # the file defining `name` in `module`, through `pub use`
    f = modules.get(module)
    if f is None or defines(f, name) or (module, name) in seen:
        return f
    for pub, q in uses[f]:
        if pub and q.split("::")[-1] == name:
            return resolve(f, q, seen | {(module, name)}) or f
        if pub and q.endswith("::*"):
            target = resolve(f, q[:-1] + name, seen | {(module, name)})
            if target and defines(target, name):
                return target
    return f

def part_of(p, target):  # is target the mod.rs of a module that file p is a part of?
    return target.name == "mod.rs" and module_of(p)[: len(module_of(target))] == module_of(target)

arrows = {p: set() for p in files}
for p, text in files.items():
    code, paths = USE.sub("", text), []
    for pub, q in uses[p]:
        name = q.split("::")[-1]
        if resolve(p, q) is None or pub and (name == "*" or not re.search(rf"\b{name}\b", code)):
            continue  # another crate, or a re-export (followed where it is used) the file does not use
        if not walk(p, q)[1] and name != "*":  # a whole module (`use crate::config;`): its `config::X`s
            paths += [q + rest for rest in re.findall(rf"(?<![\w:]){name}((?:::\w+)+)", code)]
        else:
            paths.append(q)
    paths += re.findall(r"\b(?:crate|super|self)(?:::\w+)+", code)
    for q in paths:
        target = resolve(p, q)
        if target in arrows and target != p and (STRICT or not part_of(p, target)):
            arrows[p].add(target)

if "--arrows" in sys.argv:
    sys.exit(print("\n".join(f"{p} -> {q}" for p in arrows for q in sorted(arrows[p]))))

def reach(v):  # every file v leads to (v included)
    seen = [v]
    for x in seen:
        seen += [w for w in sorted(arrows[x]) if w not in seen]
    return set(seen)

reached = {v: reach(v) for v in arrows}  # ~100 files: plain reachability finds the components
components = {tuple(sorted(w for w in reached[v] if v in reached[w])) for v in arrows}

def shortest_cycle(start, within):  # breadth first from start back to it, inside one component
    back, queue = {}, [start]
    for v in queue:
        for w in sorted(arrows[v]):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(back[path[-1]])
                return path[::-1] + [start]
            if w in within and w not in back:
                back[w] = v
                queue.append(w)

cyclic = sorted(c for c in components if len(c) > 1)
if not cyclic:
    print(f"import cycles: none ({len(arrows)} files, {sum(map(len, arrows.values()))} arrows)")
for scc in cyclic:
    print(f"import cycle among {len(scc)} files:")
    covered = set()
    for v in scc:
        if v not in covered:
            cycle = shortest_cycle(v, set(scc))
            covered.update(cycle)
            print("  " + " -> ".join(str(f.relative_to("src")) for f in cycle))

def named(p):
    return f"{p.relative_to('src')} (floor {floor_of(p)})"

homeless = [p for p in arrows if floor_of(p) is None]
upward = [(p, q) for p in arrows for q in sorted(arrows[p])
          if None not in (floor_of(p), floor_of(q)) and floor_of(q) > floor_of(p)]
for p in homeless:
    print(f"on no floor: {p.relative_to('src')} (give its folder a floor in FLOORS, scripts/import_cycles.sh)")
if upward:
    print(f"arrows running up the floors ({len(upward)}):")
for p, q in upward:
    print(f"  {named(p)} -> {named(q)}")
if not homeless and not upward:
    print(f"floors: no arrow runs up ({len(set(FLOORS.values()))} floors)")
sys.exit(1 if cyclic or homeless or upward else 0)
PY
