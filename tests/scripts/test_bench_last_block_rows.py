"""scripts/bench_last_block_rows.py: its `every-row` path really runs the whole last block at every row (else the
ratio it prints compares a path with itself), the library's path is restored after it, and bad flags exit 2 with
one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_last_block_rows.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_last_block_rows", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(SCRIPT.parent))


def _last_ffn_rows(model, step) -> int:
    seen = []
    hook = model.pclm.blocks[-1].intermediate.register_forward_hook(
        lambda m, i, o: seen.append(i[0].reshape(-1, i[0].shape[-1]).shape[0])
    )
    step()
    hook.remove()
    return seen[0]


def test_every_row_path_runs_every_row_and_restores_the_library(bench):
    import pclm.models.modeling_pclm as modeling

    batch = bench.make_batch("mlm", 4, 12)
    model = bench.pclm_model("mlm", "bp", 12)
    step, _ = bench.pclm_step(model, batch, "mlm", "bp", bf16=False)
    targets = int((batch["labels"] != -100).sum())
    assert _last_ffn_rows(model, step) == targets < batch["input_ids"].numel()
    modeling._is_node = bench._every_row
    try:
        assert _last_ffn_rows(model, step) == batch["input_ids"].numel()
    finally:
        modeling._is_node = bench._IS_NODE
    assert bench.target_share("mlm", batch) == pytest.approx(targets / batch["input_ids"].numel())
    assert bench.target_share("clm", {"labels": torch.tensor([[5, 6, -100]])}) == pytest.approx(1 / 3)


@pytest.mark.parametrize("flags", [["--configs", "mlm_xx"], ["--configs", ""], ["--repeats", "0"]])
def test_bad_flags_exit_2_with_one_line(flags):
    out = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
