"""tools/import_graph.py: arrows read from relative, absolute, root-package and lazy imports of a made-up package, its
cycle found; and pclm's own picture: no cycle, and no arrow out of pclm/pc/."""

from pathlib import Path

from tools import import_graph


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", **files}.items():
        (root / "pclm" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "pclm" / name).write_text(text)
    return root / "pclm"


def test_arrows_and_cycles_of_a_made_up_package(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "pc/__init__.py": "from .graph import Graph\n",
            "pc/graph.py": "import torch\n",
            "errors.py": "",
            "runs.py": "from .errors import UsageError\n",
            "training/__init__.py": "",
            "training/loop.py": "from .. import runs\nfrom ..pc import Graph\n",
            "vision/__init__.py": "",
            "vision/mlp.py": "def f():\n    from pclm.training import loop\n",  # lazy, absolute
            "training/job.py": "from ..vision.mlp import f\nfrom . import loop\n",
            "api.py": "from pclm import runs\nimport pclm.pc.graph\n",
        },
    )
    graph = import_graph.import_graph(pkg)
    assert graph == {
        "pc": set(),
        "errors": set(),
        "runs": {"errors"},
        "training": {"runs", "pc", "vision"},
        "vision": {"training"},
        "api": {"runs", "pc"},
    }
    assert import_graph.cycles(graph) == [["training", "vision"]]
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_pclm_has_no_cycle_and_pc_imports_nothing_of_pclm(capsys):
    graph = import_graph.import_graph()
    assert {"pc", "training", "evaluation", "runs"} <= set(graph)
    assert import_graph.cycles(graph) == []
    assert graph["pc"] == set()
    assert import_graph.main([]) == 0 and "cycle" not in capsys.readouterr().out
