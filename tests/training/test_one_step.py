"""The schedule runs in one place: only `pclm.training.step.BatchRun` asks an algorithm what moves; gradient
backends (autograd, compiled, closed form) and benchmarks only fill gradients or call the step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from pclm.algorithms import IPC
from pclm.pc import EnergyGraph, gaussian
from pclm.training.step import AutogradGradients, BatchRun, train_batch, weight_groups
from pclm.vision import MLP

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE_CALLS = re.compile(r"\.(learning_groups|updates_x|start_batch|observe_energy)\(")
ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


def test_only_the_step_runs_a_schedule():
    """Outside the algorithms (which define the schedule and count its cost), no module or script calls it."""
    callers = sorted(
        str(path.relative_to(ROOT))
        for folder in ("pclm", "scripts", "benchmarks", "experiments", "tools")
        for path in (ROOT / folder).rglob("*.py")
        if "algorithms" not in path.parts and SCHEDULE_CALLS.search(path.read_text())
    )
    assert callers == ["pclm/training/step.py"]


@pytest.mark.parametrize("x_grads", ["sample", "batch"])
def test_batch_run_steps_equal_train_batch(x_grads):
    """`train_batch` is `BatchRun.step` for t = 0 .. T-1: stepping a run by hand gives the same weights."""
    torch.manual_seed(0)
    batch = {"pixel_values": torch.randn(6, 5), "labels": torch.randint(0, 3, (6,))}
    models = [MLP(in_features=5, width=7, depth=3, classes=3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = [p.detach().clone() for p in models[0].parameters()]
    optims = [torch.optim.AdamW(weight_groups(m), lr=1e-2) for m in models]
    algorithm = IPC(4, 0.2, x_grads=x_grads)
    train_batch(models[0], batch, algorithm, optims[0], ALL_GAUSSIAN)
    run = BatchRun(AutogradGradients(models[1], batch, EnergyGraph(ALL_GAUSSIAN, 6)), algorithm, optims[1])
    for t in range(algorithm.steps):
        run.step(t)
    run.finish()
    for p, q, p0 in zip(models[0].parameters(), models[1].parameters(), start):
        assert torch.equal(p, q) and p.grad is None and q.grad is None
        assert not torch.equal(p, p0)  # every layer learned: the comparison is not of two unmoved copies
