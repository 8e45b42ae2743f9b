"""The schedule runs in one place: only `pclm.training.step.BatchRun` asks an algorithm what moves; gradient
backends (autograd, compiled, closed form) and benchmarks only fill gradients or call the step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from pclm.algorithms import IPC
from pclm.pc import EnergyGraph, gaussian
from pclm.training.backends import Autograd, AutogradGradients
from pclm.training.step import BatchRun, train_batch, weight_groups
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
    train_batch(models[0], batch, algorithm, optims[0], Autograd(ALL_GAUSSIAN))
    run = BatchRun(AutogradGradients(models[1], batch, EnergyGraph(ALL_GAUSSIAN, 6)), algorithm, optims[1])
    for t in range(algorithm.steps):
        run.step(t)
    run.finish()
    for p, q, p0 in zip(models[0].parameters(), models[1].parameters(), start):
        assert torch.equal(p, q) and p.grad is None and q.grad is None
        assert not torch.equal(p, p0)  # every layer learned: the comparison is not of two unmoved copies


def test_train_batch_takes_one_backend_switch():
    """`train_batch` has exactly five arguments: which gradients to use is one object, never several switches."""
    import inspect

    assert list(inspect.signature(train_batch).parameters) == ["model", "batch", "algorithm", "optim_w", "backend"]


def test_kept_values_continue_across_calls():
    """`Autograd(keep_values=True)` keeps one energy graph: the second call starts from the value nodes the first
    left (moved by its last inference step), not from a new feedforward initialisation."""
    torch.manual_seed(0)
    model = MLP(in_features=5, width=7, depth=3, classes=3)
    batch = {"pixel_values": torch.randn(6, 5), "labels": torch.randint(0, 3, (6,))}
    optim = torch.optim.SGD(weight_groups(model), lr=0.0)  # weights fixed: only the value nodes move
    kept, fresh = Autograd(ALL_GAUSSIAN, keep_values=True), Autograd(ALL_GAUSSIAN)
    first = train_batch(model, batch, IPC(2, 0.2), optim, kept)
    graph = kept.graph
    second = train_batch(model, batch, IPC(2, 0.2), optim, kept)
    assert kept.graph is graph and second.energy_first < first.energy_last  # inference went on
    assert train_batch(model, batch, IPC(2, 0.2), optim, fresh).energy_first == first.energy_first
