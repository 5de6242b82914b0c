#!/usr/bin/env python3
"""Checks the engine's layering (ARCHITECTURE.md, "Layers") and the CLI's use of the engine.

- Every module of engine/src belongs to a layer: its top folder (format/, storage/, repo/, cold/,
  ops/) or, for a file at the top, the layer named in LAYERS. A module imports only modules of
  lower layers, or of its own layer; no import cycle joins modules of one layer, and one operation
  never imports another (ops/forget/retention.rs belongs to ops::forget).
- The CLI names the engine only through the curated re-exports of lib.rs: no `floe_engine::a::b`.

Test code (`#[cfg(test)]` modules, tests/, benches) may use any layer: it is left out.
Prints each violation and exits 1 when there is one.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ENGINE = os.path.join(ROOT, "engine", "src")
CLI = os.path.join(ROOT, "cli", "src")

# Lower number, lower layer. Top-level files not listed here are errors.
LAYERS = {
    "id": 0, "failpoint": 0,
    "storage": 1,
    "error": 2,
    "format": 3, "exclude": 3, "attrs": 3, "units": 3, "progress": 3,
    "report": 3,
    "repo": 4,
    "cold": 5,
    "ops": 6,
    "lib": 7, "fuzzing": 7,
    "testing": 8,
}


def strip(src):
    """Source with comments and string literals blanked, and #[cfg(test)] modules removed."""
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r'r#*"(?:.|\n)*?"#*', '""', src)
    src = re.sub(r'"(?:\\.|[^"\\])*"', '""', src)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        depth, k = 0, m.end() - 1
        while k < len(src):
            if src[k] == "{":
                depth += 1
            elif src[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        i = k + 1
    out.append(src[i:])
    return "".join(out)


def modules():
    """Map module path (tuple) -> file."""
    mods = {}
    for d, _, files in os.walk(ENGINE):
        for f in files:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(d, f), ENGINE)[:-3].split(os.sep)
                mods[tuple(rel)] = os.path.join(d, f)
    return mods


def uses(text):
    """Every `crate::a::b...` path, with `use crate::{a::b, c}` groups expanded one level."""
    paths = []
    for m in re.finditer(r"\bcrate::((?:\w+::)*)(\{[^}]*\}|\w+)", text):
        head = [p for p in m.group(1).split("::") if p]
        tail = m.group(2)
        if tail.startswith("{"):
            for part in re.split(r"[,{}\s]+", tail):
                if part:
                    paths.append(head + part.split("::"))
        else:
            paths.append(head + [tail])
    return paths


def resolve(path, mods):
    """The longest module prefix of `path`."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def layer(mod):
    return LAYERS.get(mod[0])


def unit(mod):
    """What counts as one module for cycles and for the no-op-imports-op rule."""
    if mod[0] == "ops" and len(mod) > 1:
        return mod[:2]
    return mod


def main():
    mods = modules()
    problems = []
    graph = {}
    for mod, path in sorted(mods.items()):
        if layer(mod) is None:
            problems.append(f"{path}: top-level module {mod[0]!r} has no layer in .ci/layers.py")
            continue
        text = strip(open(path, encoding="utf-8").read())
        for p in uses(text):
            target = resolve(p, mods)
            if target is None or target == mod or unit(target) == unit(mod):
                continue
            if len(mod) > 1 and target == mod[:1]:
                continue  # a folder's own module file (format.rs for format/...)
            graph.setdefault(unit(mod), set()).add(unit(target))
            lm, lt = layer(mod), layer(target)
            if lt is None:
                continue
            where = f"{'/'.join(mod)}.rs -> {'::'.join(target)}"
            if lt > lm:
                problems.append(f"upward import: {where}")
            elif mod[0] == "ops" and target[0] == "ops" and len(target) > 1:
                problems.append(f"one operation imports another: {where}")
    problems += cycles(graph)
    problems += cli_paths()
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"layers: {len(mods)} modules, no upward imports, no cycles, CLI uses lib.rs only")


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append("import cycle: " + " <-> ".join(sorted("::".join(c) for c in comp)))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def cli_paths():
    out = []
    for d, _, files in os.walk(CLI):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            text = strip(open(path, encoding="utf-8").read())
            names = re.findall(r"\bfloe_engine::([a-z_]\w*)::", text)
            for group in re.findall(r"\bfloe_engine::\{([^;]*)\}", text):
                names += re.findall(r"(?:^|[,{\s])([a-z_]\w*)::", group)
            for name in sorted(set(names)):
                out.append(f"{os.path.relpath(path, ROOT)}: floe_engine::{name} is a module path; "
                           "export what the CLI needs from lib.rs")
    return out


if __name__ == "__main__":
    main()
