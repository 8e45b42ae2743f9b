"""scripts/sweep.py: grid expansion, selection of the best point on dev perplexity, converged counts, bad input."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sweep", ROOT / "scripts" / "sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def test_expand_is_the_cartesian_product():
    points = sweep.expand({"train.lr": [1, 2], "pc.inference_steps": [3, 4, 5]})
    assert len(points) == 6 and {"train.lr": 2, "pc.inference_steps": 5} in points
    assert sweep.point_name({"train.lr": 0.001, "pc.inference_steps": 4}) == "lr=0.001_inference_steps=4"


def test_best_point_first_and_diverged_not_converged(tmp_path):
    points = sweep.expand({"train.lr": [1, 2, 3, 4]})
    runs = {1: ("completed", 300.0), 2: ("completed", 150.0), 3: ("diverged", 100.0)}
    for lr, (status, dev) in runs.items():
        d = tmp_path / sweep.point_name({"train.lr": lr})
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"status": status, "best_dev_ppl": dev, "test_ppl": dev + 1}))
    rows = sweep.collect(tmp_path, points, converged_below=200.0)
    # converged points first, by dev perplexity; then the rest by dev (diverged 100, 300 > threshold, missing)
    assert [r["point"]["train.lr"] for r in rows] == [2, 3, 1, 4]
    assert [r["converged"] for r in rows] == [True, False, False, False]
    sweep.write_results(tmp_path, {"task": "clm", "algo": "ipc"}, rows)
    assert json.loads((tmp_path / "results.json").read_text())["converged"] == 1


def test_shipped_grids_match_the_paper_sizes():
    sizes = {p.stem: len(sweep.expand(__import__("yaml").safe_load(p.read_text())["grid"]))
             for p in (ROOT / "configs" / "grids").glob("*.yaml")}
    assert sizes == {"mlm_bp": 35, "clm_bp": 35, "mlm_pc": 96, "mlm_ipc": 20, "clm_pc": 96, "clm_ipc": 20}


def test_bad_grid_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "g.yaml"
    bad.write_text("task: clm\nalgo: ipc\ngrid: {train.lr: 3}\n")
    assert sweep.main([str(bad), "--output-dir", str(tmp_path / "out")]) == 2
    assert "error: bad grid file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
