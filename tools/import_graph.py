#!/usr/bin/env python
"""The import picture of pclm at subpackage level: one arrow A -> B when some module of A imports from B, lazy
(inside a function) and type-checking imports included, since each is a dependency all the same.

    python tools/import_graph.py            # the arrows, then the cycles (exit 1 when there is one)

A node is a subpackage (pclm/pc, pclm/training, ...) or a top-level module (pclm/runs.py, ...); the package root
(pclm/__init__.py) is left out. Imports are read from the source (ast), never executed."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

PACKAGE = Path(__file__).resolve().parents[1] / "pclm"


def node_of(parts: tuple[str, ...]) -> str | None:
    """("pclm", "training", "lm") -> "training"; the root package itself -> None."""
    return parts[1] if len(parts) > 1 and parts[0] == "pclm" else None


def _imported(tree: ast.AST, module: tuple[str, ...], is_package: bool) -> set[tuple[str, ...]]:
    """Dotted names (as tuples) of the pclm modules or names `module` imports."""
    base = module if is_package else module[:-1]  # the package that relative imports start from
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {tuple(a.name.split(".")) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                start = base[: len(base) - (node.level - 1)]
                target = start + tuple(node.module.split(".")) if node.module else start
            else:
                target = tuple((node.module or "").split("."))
            # `from .. import runs` (from the root package): each name is a module of its own
            found |= {target + (a.name,) for a in node.names} if len(target) == 1 else {target}
    return {f for f in found if f and f[0] == "pclm"}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{node: nodes it imports from}, every node of the package listed."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        is_package = rel.name == "__init__"
        module = rel.parts[:-1] if is_package else rel.parts
        src = node_of(module)
        if src is None:
            continue
        deps = graph.setdefault(src, set())
        for target in _imported(ast.parse(path.read_text(), str(path)), module, is_package):
            dst = node_of(target)
            if dst is not None and dst != src:
                deps.add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    graph = import_graph()
    for src in sorted(graph):
        print(f"{src:12s} -> {', '.join(sorted(graph[src])) or '(nothing)'}")
    found = cycles(graph)
    for c in found:
        print(f"cycle: {' <-> '.join(c)}")
    if graph.get("pc"):
        print(f"pc imports {', '.join(sorted(graph['pc']))}: arrows must point toward pc, never out of it")
    return 1 if found or graph.get("pc") else 0


if __name__ == "__main__":
    sys.exit(main())
