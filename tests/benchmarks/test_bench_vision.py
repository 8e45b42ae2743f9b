"""benchmarks/bench_vision.py runs the settings of the committed pcx comparison, and refuses bad input with one line
and exit 2, before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_vision
from pclm.config import load_config, upgrade_saved


def test_settings_come_from_the_config_the_committed_report_ran(tmp_path, capsys):
    """configs/vision/bench_pcx.yaml resolves to the settings of the committed reports/bench_vision.json run
    (everything but the data folder), and an override changes one key of it: a bad value is one `error:` line."""
    root = Path(__file__).resolve().parents[2]
    resolved = load_config(root / "configs" / "vision" / "bench_pcx.yaml", []).to_dict()
    # saved before train.backend: its train.compile / train.fused false read as autograd, as a run folder's are
    committed = upgrade_saved(json.loads((root / "reports" / "bench_vision.json").read_text())["config"])
    resolved["data"].pop("data_dir"), committed["data"].pop("data_dir")
    # keys added after the report ran, none of which changes what is trained (a time-based checkpoint saves state)
    for key in set(resolved["train"]) - set(committed["train"]):
        assert key in {"checkpoint_minutes"}, key
        resolved["train"].pop(key)
    assert resolved == committed
    out = tmp_path / "bench.json"
    assert bench_vision.main(["train.epochs=0", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "train.epochs" in err and "\n" not in err and not out.exists()


def test_backends_race_on_a_small_run(tmp_path, capsys):
    """Two backends, two alternating rounds on 256 MNIST images: the report holds every run, and autograd and the
    closed form, with the same seed and data order, end at the same test accuracy."""
    data = Path(bench_vision.ROOT.parent / "shared" / "data" / "mnist")
    if not data.is_dir():
        pytest.skip(f"no MNIST in {data}")
    out = tmp_path / "bench.json"
    argv = ["--backends", "autograd", "closed_form", "--rounds", "2", "--threads", "1", "--output", str(out)]
    assert bench_vision.main([*argv, "train.epochs=2", "data.train_size=256", "data.test_size=500"]) == 0
    report = json.loads(out.read_text())
    assert [list(r["runs"]) for r in report["rounds"]] == [["autograd", "closed_form"]] * 2
    assert report["command"].startswith("python benchmarks/bench_vision.py --backends autograd closed_form")
    accuracy = report["summary"]["autograd"]["final_test_accuracy"]
    assert accuracy == report["summary"]["closed_form"]["final_test_accuracy"] and len(accuracy) == 2
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}"
