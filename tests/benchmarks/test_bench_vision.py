"""benchmarks/bench_vision.py refuses a pcx comparison it cannot make, with one line and exit 2, before training."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import bench_vision


@pytest.fixture(scope="module")
def bench():
    return bench_vision


@pytest.mark.parametrize(
    "extra",
    [
        ["--pcx-python", "/nowhere/python"],
        ["--pcx-python", sys.executable, "--dataset", "cifar10"],
        ["--pcx-python", sys.executable, "--algo", "pc"],
    ],
    ids=["missing interpreter", "other dataset", "other algorithm"],
)
def test_bad_pcx_comparison_exits_2_with_one_line(bench, extra, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main([*extra, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --pcx-python") and "\n" not in err
    assert not out.exists()


def test_settings_come_from_the_config_the_committed_report_ran(bench, tmp_path, capsys):
    """configs/vision/bench_pcx.yaml resolves to the settings of the committed reports/bench_vision.json run
    (everything but the data folder), and a flag overrides one key of it: a bad value is one `error:` line."""
    import json

    from pclm.config import load_config, upgrade_saved

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
    assert bench.main(["--epochs", "0", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "train.epochs" in err and "\n" not in err and not out.exists()
