"""Gradient backends: where `train_batch` gets a mini-batch's energy and local gradients from. One switch,
`train.backend`, picks one; the schedule (`pclm.training.step.BatchRun`) is the same for all of them:

    autograd     the model's forward on an energy graph and one backward (`Autograd`; any model, any processes)
    compiled     the same gradients from one `torch.compile`d function of the model (`Compiled`; one process)
    closed_form  the vision MLP's gradients in closed form (`pclm.vision.ClosedFormMLP`; one process)

A backend has one method, `begin(model, batch, algorithm) -> Gradients`: the mini-batch's gradient source, which
fills gradients and decides nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch

from ...algorithms import Algorithm
from ...config import VISION_BACKENDS, check_backend_name
from ...errors import UsageError
from ...pc import EnergyFn
from .autograd import Autograd, AutogradGradients, evaluate_energy
from .compiled import Compiled, CompiledEnergy

__all__ = [
    "BACKENDS",
    "Autograd",
    "AutogradGradients",
    "Backend",
    "Compiled",
    "CompiledEnergy",
    "Gradients",
    "build_backend",
    "check_backend",
    "evaluate_energy",
]

BACKENDS = VISION_BACKENDS  # every backend; a language model takes the first two (`pclm.config.LM_BACKENDS`)


class Gradients(Protocol):
    """A gradient source for one mini-batch: it evaluates the energy and fills gradients, and decides nothing.

    `evaluate(learn, x_scale, need_x)` evaluates F on the current value nodes and weights and leaves dF/dtheta in
    the `.grad` of every weight in the groups `learn` names (None or zeros elsewhere is fine: `BatchRun` sets them)
    and, when `need_x`, x_scale * dF/dx in each value node's `.grad`. It returns (F, mean output loss).
    `values()` lists the value nodes (empty without any); valid after the first evaluation.
    `keep_values`: the value nodes outlive the batch (a step after its last evaluation is kept).
    `owns_grads`: at every evaluation with a non-empty `learn` the backend itself sets each weight's `.grad` (those
    in `learn`, None elsewhere), in one process: `BatchRun` then leaves the gradients alone and may step the
    weights through the optimiser's own kernel (`optimizer_kernel`)."""

    keep_values: bool
    owns_grads: bool
    batch_size: int

    def evaluate(self, learn: list[int], x_scale: float, need_x: bool) -> tuple[float, torch.Tensor | float]: ...

    def values(self) -> list[torch.Tensor]: ...


class Backend(Protocol):
    """`begin` gives the gradient source of one mini-batch of `model` under `algorithm` (whose `uses_value_nodes`
    says whether the batch has value nodes)."""

    def begin(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor], algorithm: Algorithm) -> Gradients: ...


def check_backend(name: str, accelerator) -> None:
    """`compiled` and `closed_form` run in one process without mixed precision; anything else is a one-line
    `UsageError` (raised before a run writes anything)."""
    if name != "autograd" and (accelerator.num_processes > 1 or accelerator.mixed_precision != "no"):
        raise UsageError(f"train.backend={name} runs in one process without mixed precision")


def build_backend(
    name: str,
    model: torch.nn.Module,
    optim_w: torch.optim.Optimizer,
    select: Callable[[str], EnergyFn | None],
    accelerator=None,
) -> Backend:
    """The backend `name` (one of `BACKENDS`, checked as the config checks `train.backend`) for the unwrapped
    `model`, trained by `optim_w`, with value nodes where `select` puts them (the closed form has its own: every
    hidden layer of the MLP)."""
    check_backend_name(name, BACKENDS)
    if name == "autograd":
        return Autograd(select, accelerator)
    if name == "compiled":
        return Compiled(model, select)
    from ...vision.closed_form import ClosedFormMLP

    return ClosedFormMLP(model, optim_w)
