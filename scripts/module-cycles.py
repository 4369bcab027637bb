#!/usr/bin/env python3
"""Fails when the top-level modules of a Rust crate import each other in a cycle.

    python3 scripts/module-cycles.py crates/server/src [src ...]

A module is a top-level file or folder of the crate's src/ (`http/publish.rs` belongs to
`http`). An edge A -> B is any `crate::B` path written in A (in `use` lists too, braces
included). The crate root (lib.rs, main.rs) is left out: it declares every module. Prints the
edges and every cycle found; exits 1 if there is one.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\bcrate::(\{[^;]*?\}|\w+)", re.S)


def modules_used(text):
    """The top-level modules named by `crate::` paths in `text`."""
    out = set()
    # Comments name modules too (docs): only code counts.
    text = re.sub(r"//[^\n]*", "", text)
    for m in PATH.finditer(text):
        item = m.group(1)
        if item.startswith("{"):
            depth, word, names = 0, "", []
            for ch in item[1:-1]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                elif depth == 0 and ch == ",":
                    names.append(word)
                    word = ""
                    continue
                if depth == 0:
                    word += ch
            names.append(word)
            for n in names:
                first = re.match(r"\s*(\w+)", n)
                if first:
                    out.add(first.group(1))
        else:
            out.add(item)
    return out


def graph(src):
    src = Path(src)
    edges = {}
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.parts[0] in ("lib.rs", "main.rs", "bin"):
            continue
        module = rel.parts[0].removesuffix(".rs")
        used = modules_used(f.read_text())
        edges.setdefault(module, set()).update(u for u in used if u != module and u != "self")
    names = set(edges)
    return {m: {t for t in ts if t in names} for m, ts in edges.items()}


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(args):
    if not args:
        print(__doc__.strip())
        return 2
    failed = False
    for src in args:
        edges = graph(src)
        found = cycles(edges)
        print(f"{src}: {len(edges)} modules, {sum(len(t) for t in edges.values())} edges")
        for m in sorted(edges):
            print(f"  {m} -> {', '.join(sorted(edges[m])) or '-'}")
        for c in found:
            failed = True
            print(f"  CYCLE: {' <-> '.join(c)}")
        if not found:
            print("  no import cycle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
