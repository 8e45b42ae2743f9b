"""No two modules of pclm import each other, however indirectly: the import picture module by module (not only by
subpackage, as scripts/import_graph.py draws it), type-checking and lazy imports included. A module importing its
own package (`from . import x` inside pclm/algorithms/zil.py) is left out: a package's __init__ re-exports."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.import_graph import cycles

PACKAGE = Path(__file__).resolve().parents[2] / "pclm"


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the pclm modules it imports}, dotted names; every import statement counts."""
    found: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("").parts
        is_package = rel[-1] == "__init__"
        module = rel[:-1] if is_package else rel
        base = module if is_package else module[:-1]
        deps: set[tuple[str, ...]] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    start = base[: len(base) - (node.level - 1)]
                    target = start + tuple(node.module.split(".")) if node.module else start
                else:
                    target = tuple((node.module or "").split("."))
                deps |= {target} | {target + (a.name,) for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {tuple(a.name.split(".")) for a in node.names}
        found[module] = deps
    return {
        ".".join(m): {".".join(d) for d in deps if d in found and d != m and m[: len(d)] != d}  # not its parents
        for m, deps in found.items()
    }


def test_the_finder_sees_a_type_only_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pclm" / "algorithms"
    pkg.mkdir(parents=True)
    (tmp_path / "pclm" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .base import A\n")
    (pkg / "base.py").write_text("from .cost import c\nclass A: ...\n")
    (pkg / "cost.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .base import A\n")
    assert cycles(module_graph(tmp_path / "pclm")) == [["pclm.algorithms.base", "pclm.algorithms.cost"]]


def test_no_module_of_pclm_is_on_an_import_cycle() -> None:
    assert cycles(module_graph()) == []
