"""experiments/gradient_alignment/diag_ipc_grads.py against the closed form of feedforward initialisation: at t = 0
every value node equals its prediction, so only the output's error exists and only the head gets a gradient, exactly
BP's there. The error then moves one value node down per inference step, and the schedule's learning evaluations are
marked."""

import json
from pathlib import Path

import pytest

from tests.conftest import tiny_lm

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo, extra, learning",
    [
        ("ipc", [], [0, 1, 2, 3]),  # T 4, value nodes out+scores (D 3): a weight step at every evaluation
        ("pc", ["pc.inference_steps=3"], [3]),  # T 3 inference steps, value nodes out (D 2); one weight step after
    ],
)
def test_t0_gradient_is_bp_at_the_head_and_zero_below(tmp_path, algo, extra, learning):
    # The tokenizer's vocabulary (the script reads 1B Word text) and room for its sentences (data.max_length=32)
    tiny_lm("clm", vocab_size=8001, max_position_embeddings=64, layer_norm=True).save_pretrained(tmp_path / "ckpt")
    from experiments.gradient_alignment import diag_ipc_grads as module

    out = tmp_path / "diag.json"
    assert (
        module.main(
            [
                str(tmp_path / "ckpt"),
                "--data-dir",
                str(REPO / "pclm" / "data" / "lm1b_sample"),
                "--batches",
                "1",
                "--json",
                str(out),
                "--algo",
                algo,
                "train.batch_size=8",
                "data.train_size=50",
                "data.dev_size=10",
                "data.test_size=10",
                *extra,
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    at0 = {(r["x_grads"], r["group"]): r for r in rows if r["t"] == 0}
    for convention in ("sample", "batch"):
        assert abs(at0[(convention, "head")]["cosine"] - 1.0) < 1e-5
        assert abs(at0[(convention, "head")]["norm_ratio"] - at0[("sample", "head")]["norm_ratio"]) < 1e-6
        for group in ("embeddings", "block 0", "block 1"):
            assert at0[(convention, group)]["norm_ratio"] == 0.0
    assert sorted({r["t"] for r in rows if r["learns"]}) == learning
    assert max(r["t"] for r in rows) == 3
    later = [r for r in rows if r["t"] == 3 and r["group"] == "block 0"]
    assert later and all(r["norm_ratio"] > 0 for r in later)  # the error has reached block 0 by t = D
