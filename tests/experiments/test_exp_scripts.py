"""experiments/fullbatch_efficiency/exp_fullbatch.py and experiments/generative_efficiency/exp_generative.py: their core
functions on tiny data, SMM accounting against SPEC.md Table 4, and a missing data directory (exit 2, one line)."""

import importlib

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


def _load(name):
    folder = {"exp_fullbatch": "fullbatch_efficiency", "exp_generative": "generative_efficiency"}[name]
    return importlib.import_module(f"experiments.{folder}.{name}")


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.rand(n, 1, 4, 4, generator=g), "labels": torch.randint(0, 10, (n,), generator=g)}


def test_fullbatch_curves_count_smms_per_table4():
    exp = _load("exp_fullbatch")
    L, budget = 3, 60
    per_update = {"bp": 2 * L - 1, "zil": 2 * (L - 1), "ipc": 2, "pc": 2 * 4}
    for name, steps in exp.runs_for(L, [1, 4]):  # PC T=1 < L-1 is left out
        r = exp.train_curve(name, _batch(), L, 8, 0.1, 0.5, steps, budget, 4, seed=0)
        assert r["smms_per_update"] == per_update[name], name
        assert r["updates"] == -(-budget // per_update[name]) and r["smms"][-1] == r["updates"] * per_update[name]
        assert r["loss"][-1] < r["loss"][0], name
    assert [n for n, _ in exp.runs_for(6, [4, 8])] == ["bp", "zil", "ipc", "pc"]


def test_generative_curve_and_missing_data(tmp_path, capsys):
    gen = _load("exp_generative")
    batch = {"pixel_values": torch.rand(4, 12, generator=torch.Generator().manual_seed(0))}
    r = gen.energy_curve("ipc", batch, 3, 8, 4, 0.05, 0.1, 1, 20, seed=0)
    assert r["iteration"] == list(range(20)) and r["energy"][-1] < r["energy"][0]
    r = gen.energy_curve("pc", batch, 3, 8, 4, 0.05, 0.1, 4, 20, seed=0)
    assert r["weight_updates"] == 4 and r["iteration"] == [4, 9, 14, 19]
    assert gen.main(["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err and not list(tmp_path.iterdir())
