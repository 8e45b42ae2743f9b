"""pclm.cli.sweep: grid expansion, selection of the best point on dev perplexity, converged counts, bad input."""

import json
import sys
from pathlib import Path

import pytest

from pclm.cli import sweep

ROOT = Path(__file__).resolve().parents[2]


def test_expand_is_the_cartesian_product():
    points = sweep.expand({"train.lr": [1, 2], "pc.inference_steps": [3, 4, 5]})
    assert len(points) == 6 and {"train.lr": 2, "pc.inference_steps": 5} in points
    assert sweep.point_name({"train.lr": 0.001, "pc.inference_steps": 4}) == "lr=0.001_inference_steps=4"


def test_best_point_first_and_diverged_not_converged(tmp_path):
    points = sweep.expand({"train.lr": [1, 2, 3, 4, 5]})
    runs = {1: ("completed", 300.0), 2: ("completed", 150.0), 3: ("diverged", 100.0)}
    for lr, (status, dev) in runs.items():
        d = tmp_path / sweep.point_name({"train.lr": lr})
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"status": status, "best_dev_ppl": dev, "test_ppl": dev + 1}))
    (tmp_path / "lr=5").mkdir()
    (tmp_path / "lr=5" / "metrics.json").write_text('{"status": "completed", "best_dev_ppl": 1')  # cut short
    rows = sweep.collect(tmp_path, points, converged_below=200.0)
    # converged points first, by dev perplexity; then the rest by dev (diverged 100, 300 > threshold, missing, corrupt)
    assert [r["point"]["train.lr"] for r in rows] == [2, 3, 1, 4, 5]
    assert [r["converged"] for r in rows] == [True, False, False, False, False]
    assert [r["status"] for r in rows] == ["completed", "diverged", "completed", "missing", "unreadable"]
    sweep.write_results(tmp_path, {"task": "clm", "algo": "ipc"}, rows)
    assert json.loads((tmp_path / "results.json").read_text())["converged"] == 1


def test_shipped_grids_match_the_paper_sizes():
    sizes = {
        p.stem: len(sweep.expand(__import__("yaml").safe_load(p.read_text())["grid"]))
        for p in (ROOT / "configs" / "grids").glob("*.yaml")
    }
    expected = {
        "mlm_bp": 35,
        "clm_bp": 35,
        "mlm_pc": 96,
        "mlm_ipc": 20,
        "clm_pc": 96,
        "clm_ipc": 20,
        "vision_mlp_robustness_bp": 12,
        "vision_mlp_robustness_ipc": 108,
        "vision_mlp_robustness_pc": 108,
    }  # 36 (alpha, gamma, T) points, or 4 alphas, x 3 seeds
    assert {k: sizes.get(k) for k in expected} == expected  # other grids (CPU-scale extras) may sit beside them


def test_bad_grid_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "g.yaml"
    bad.write_text("task: clm\nalgo: ipc\ngrid: {train.lr: 3}\n")
    assert sweep.main([str(bad), "--output-dir", str(tmp_path / "out")]) == 2
    assert "error: bad grid file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_vision_points_converge_above_twice_chance(tmp_path):
    points = sweep.expand({"train.lr": [1, 2, 3, 4, 5]})
    runs = {
        1: ("completed", 0.80, 0.78),
        2: ("completed", 0.15, 0.19),
        3: ("diverged", 0.90, None),
        4: ("early_stopped", 0.85, 0.84),
    }
    for lr, (status, dev, test) in runs.items():
        d = tmp_path / sweep.point_name({"train.lr": lr})
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"status": status, "best_dev_accuracy": dev, "test_accuracy": test}))
    spec = {"script": "train_vision.py", "model": "mlp", "dataset": "fashion-mnist", "algo": "ipc"}
    above = sweep.default_converged_above(spec)
    assert above == 0.2
    rows = sweep.collect_vision(tmp_path, points, above)
    # converged first, best dev accuracy first; 0.19 test accuracy is below twice chance; diverged never converges
    assert [r["point"]["train.lr"] for r in rows] == [4, 1, 3, 2, 5]
    assert [r["converged"] for r in rows] == [True, True, False, False, False]
    assert sum(r["converged"] for r in sweep.collect_vision(tmp_path, points, 0.8)) == 1
    sweep.write_results(tmp_path, spec, rows, "the rule")
    assert json.loads((tmp_path / "results.json").read_text())["converged"] == 2
    md = (tmp_path / "results.md").read_text()
    assert "Converged: the rule." in md and "84.00%" in md


def test_vision_grid_launches_train_vision_with_its_flags(tmp_path, monkeypatch):
    grid = tmp_path / "g.yaml"
    grid.write_text(
        "script: train_vision.py\nmodel: mlp\ndataset: mnist\nalgo: bp\n"
        "fixed: {train.epochs: 1}\ngrid: {train.lr: [0.1, 0.2]}\n"
    )
    calls = []

    def fake_launch(launcher, run, args, script):
        calls.append((run.name, args, script.name))
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "best_dev_accuracy": 0.5,
                    "test_accuracy": 0.15 if "train.lr=0.1" in args else 0.5,
                }
            )
        )
        return 0

    monkeypatch.setattr(sweep, "launch_train", fake_launch)
    assert sweep.main([str(grid), "--output-dir", str(tmp_path / "out"), "--", "--threads", "1"]) == 0
    assert calls[0] == (
        "lr=0.1",
        ["--model=mlp", "--dataset=mnist", "--algo=bp", "--threads", "1", "train.epochs=1", "train.lr=0.1"],
        "train_vision.py",
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["converged"] == 1 and "above 20.0%" in results["converged_rule"]


def test_unknown_training_script_exits_2(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("script: train_nothing.py\nalgo: bp\ngrid: {train.lr: [1]}\n")
    assert sweep.main([str(grid), "--output-dir", str(tmp_path / "out")]) == 2
    assert "train_nothing.py" in capsys.readouterr().err


# Stands in for `accelerate launch scripts/train_lm.py`: refuses its input as the script does (the error line, the
# marker file a runner names), but exits 1 as accelerate launch would.
REFUSING = """
import os, sys
open(os.path.join(os.path.dirname(__file__), "calls.txt"), "a").write("call\\n")
print("error: config key 'train.lr' must be a finite number > 0, got -1.0", file=sys.stderr)
open(os.environ["PCLM_USAGE_ERROR_FILE"], "a").write("error: ...\\n")
sys.exit(1)
"""


def test_stops_at_the_first_bad_input_however_launched(tmp_path, capsys):
    fake = tmp_path / "launcher.py"
    fake.write_text(REFUSING)
    grid = tmp_path / "g.yaml"
    grid.write_text("task: clm\nalgo: ipc\ngrid: {train.lr: [1, 2, 3]}\n")
    code = sweep.main([str(grid), "--output-dir", str(tmp_path / "out"), "--launcher", f"{sys.executable} {fake}"])
    assert code == 2 and (tmp_path / "calls.txt").read_text() == "call\n"  # the first point only
    err = capsys.readouterr().err.splitlines()
    assert err == ["stopped at point lr=1: the training script refused its input"]  # the child's line went to fd 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("task: clm\nalgo: ipc\ngrid: {}\n", "'grid' is empty"),
        ("task: clm\nalgo: ipc\n", "'grid' is empty"),
        ("task: clm\nalgo: ipc\ngrid: {train.lr: []}\n", "non-empty lists"),
        (
            "task: clm\nalgo: ipc\ngrid: {" + ", ".join(f"train.k{i}: [1, 2]" for i in range(54)) + "}\n",
            "more than 10,000 points",
        ),
        ("", "NoneType"),
        ("[1, 2]", "list"),
        ("task: clm\ngrid: {train.lr: [1]}\n", "'algo'"),
        ("task: clm\nalgo: ipc\nscript: ../../bin/sh\ngrid: {train.lr: [1]}\n", "no training script"),
        ("task: clm\nalgo: ipc\nfixed: {--output-dir: /tmp/x}\ngrid: {train.lr: [1]}\n", "not a dotted config key"),
        ("task: clm\nalgo: ipc\ngrid: {--output-dir: [/tmp/x]}\n", "not a dotted config key"),
    ],
)
def test_bad_grid_files(tmp_path, capsys, text, message):
    bad = tmp_path / "g.yaml"
    bad.write_text(text)
    capsys.readouterr()
    assert sweep.main([str(bad), "--output-dir", str(tmp_path / "out"), "--launcher", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad grid file") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]
