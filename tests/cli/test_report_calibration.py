"""`pclm-report calibration` (pclm/cli/report_calibration.py) on fake runs: the trained-model loader is replaced by a stub, the report's
JSON and box plot are checked against the fake models' scores."""

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from pclm.evaluation.calibration import calibration_under_corruption
from pclm.vision.corruptions import CORRUPTIONS


def _script():
    from pclm.cli import report_calibration

    return report_calibration


class _FakeModel(torch.nn.Module):
    """Logits from the mean of each channel: a fixed random linear map, different per run folder."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.w = torch.randn(3, 10, generator=torch.Generator().manual_seed(seed)) * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) @ self.w  # (N, 10)


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    loaded = []

    def load_vision_run(run_dir):
        loaded.append(Path(run_dir))
        return _FakeModel(len(loaded)), types.SimpleNamespace(data=types.SimpleNamespace(dataset="cifar10-pickle"))

    def predict_logits(model, images, batch_size=512):
        return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])

    classifier, scoring = types.ModuleType("pclm.vision.classifier"), types.ModuleType("pclm.evaluation.vision")
    classifier.load_vision_run, scoring.predict_logits = load_vision_run, predict_logits
    monkeypatch.setitem(sys.modules, "pclm.vision.classifier", classifier)
    monkeypatch.setitem(sys.modules, "pclm.evaluation.vision", scoring)
    data = tmp_path / "cifar"
    data.mkdir()
    rng = np.random.default_rng(0)
    with open(data / "test_batch", "wb") as f:
        pickle.dump(
            {b"data": rng.integers(0, 256, (30, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 30).tolist()}, f
        )
    dirs = {}
    for name in ("bp0", "bp1", "ipc0", "ipc1"):
        (tmp_path / name).mkdir()
        dirs[name] = str(tmp_path / name)
    return {"data": str(data), "dirs": dirs, "loaded": loaded, "tmp": tmp_path}


def test_script_writes_json_and_boxplot(fake_runs, capsys):
    d, out = fake_runs["dirs"], fake_runs["tmp"] / "reports" / "calib"
    rc = _script().main(
        [
            "--runs",
            f"BP={d['bp0']},{d['bp1']}",
            "--runs",
            f"iPC={d['ipc0']},{d['ipc1']}",
            "--dataset",
            "cifar10-pickle",
            "--data-dir",
            fake_runs["data"],
            "--output",
            str(out),
            "--test-size",
            "20",
            "--n-bins",
            "4",
            "--batch-size",
            "7",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out.parent / "calib.json").read_text())
    assert (out.parent / "calib.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(report["methods"]) == ["BP", "iPC"] and report["n_images"] == 20 and report["n_bins"] == 4
    assert list(report["methods"]["BP"]) == [d["bp0"], d["bp1"]]
    for runs in report["methods"].values():
        for res in runs.values():
            assert set(res["corrupted"]) == set(CORRUPTIONS)
            assert all(set(levels) == {"1", "2", "3", "4", "5"} for levels in res["corrupted"].values())
            assert 0.0 <= res["clean"]["adaece"] <= 1.0
    summary = report["summary"]["iPC"]
    assert summary["0"]["values"] == 2 and summary["3"]["values"] == 6 * 2  # seeds; corruptions x seeds
    ipc_clean = [r["clean"]["adaece"] for r in report["methods"]["iPC"].values()]
    assert summary["0"]["adaece_mean"] == pytest.approx(sum(ipc_clean) / 2)
    assert report["levels"]["rotation"] == [15.0, 30.0, 45.0, 60.0, 75.0]
    assert report["command"].startswith("pclm-report calibration --runs ")
    assert fake_runs["loaded"] == [Path(d[k]) for k in ("bp0", "bp1", "ipc0", "ipc1")]


def test_script_results_match_library(fake_runs):
    # the JSON holds exactly what calibration_under_corruption gives for the same model and test subset
    from pclm.data.vision import load_vision_dataset

    d, out = fake_runs["dirs"], fake_runs["tmp"] / "one"
    assert (
        _script().main(
            [
                "--runs",
                f"BP={d['bp0']}",
                "--dataset",
                "cifar10-pickle",
                "--data-dir",
                fake_runs["data"],
                "--output",
                str(out),
                "--test-size",
                "12",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    x, y = load_vision_dataset("cifar10-pickle", fake_runs["data"], "test")
    keep = torch.randperm(30, generator=torch.Generator().manual_seed(3))[:12]
    expected = calibration_under_corruption(_FakeModel(1), x[keep], y[keep], seed=3)  # the model the stub built
    got = json.loads(out.with_suffix(".json").read_text())["methods"]["BP"][d["bp0"]]
    assert got == json.loads(json.dumps(expected))


@pytest.mark.parametrize("case", ["missing_run", "unknown_dataset", "bad_runs", "missing_data"])
def test_script_bad_input_exits_2_writes_nothing(fake_runs, capsys, case):
    d, out = fake_runs["dirs"], fake_runs["tmp"] / "out" / "calib"
    args = {"runs": f"BP={d['bp0']}", "dataset": "cifar10-pickle", "data": fake_runs["data"]}
    if case == "missing_run":
        args["runs"] = f"BP={d['bp0']},{fake_runs['tmp'] / 'nope'}"
    elif case == "unknown_dataset":
        args["dataset"] = "imagenet"
    elif case == "bad_runs":
        args["runs"] = d["bp0"]
    else:
        args["data"] = str(fake_runs["tmp"] / "no-data")
    rc = _script().main(
        ["--runs", args["runs"], "--dataset", args["dataset"], "--data-dir", args["data"], "--output", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (fake_runs["tmp"] / "out").exists()


def test_script_refuses_runs_of_another_dataset(fake_runs, capsys, monkeypatch):
    # Runs trained on MNIST (1x28x28) cannot take the CIFAR-10 test set (3x32x32): one line, nothing written.
    stub = sys.modules["pclm.vision.classifier"]
    real = stub.load_vision_run
    monkeypatch.setattr(
        stub,
        "load_vision_run",
        lambda run_dir: (real(run_dir)[0], types.SimpleNamespace(data=types.SimpleNamespace(dataset="mnist"))),
    )
    out = fake_runs["tmp"] / "c"
    rc = _script().main(
        [
            "--runs",
            f"BP={fake_runs['dirs']['bp0']}",
            "--dataset",
            "cifar10-pickle",
            "--data-dir",
            fake_runs["data"],
            "--output",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [
        f"error: run '{fake_runs['dirs']['bp0']}' was trained on mnist, whose images and "
        "classes differ from cifar10-pickle's"
    ]
    assert not out.with_name("c.json").exists() and not out.with_name("c.png").exists()
