"""One mini-batch of training, the same code for every algorithm and backend: the backend evaluates the energy and
fills the local gradients, then the algorithm's schedule says what moves."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..algorithms import Algorithm, Diverged, StepStats
from .backends import Backend, Gradients
from .groups import layer_groups, weight_groups
from .optimizer_kernels import optimizer_kernel

__all__ = [
    "BatchRun",
    "Diverged",
    "StepStats",
    "train_batch",
    "layer_groups",
    "weight_groups",
]


def train_batch(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    algorithm: Algorithm,
    optim_w: torch.optim.Optimizer,
    backend: Backend,
) -> StepStats:
    """Train on one mini-batch with `algorithm`'s schedule: `BatchRun.step` for t = 0 .. T-1.

    `backend` (`pclm.training.backends`: `Autograd`, `Compiled`, `pclm.vision.ClosedFormMLP`) gives the mini-batch's
    gradients and its value nodes, created by the first forward pass (feedforward initialisation); they live only
    in this call unless the backend keeps them (`Autograd(..., keep_values=True)`: full-batch iPC). The value nodes
    move by plain SGD at the algorithm's inference lr. The schedule's weight groups are the model's own
    (`layer_groups`), whatever `optim_w`'s parameter groups are.
    """
    run = BatchRun(backend.begin(model, batch, algorithm), algorithm, optim_w, layer_groups(model))
    for t in range(algorithm.steps):
        run.step(t)
    run.finish()
    return run.stats


class BatchRun:
    """One mini-batch under `algorithm`'s schedule, the only place the schedule runs: `step(t)` is evaluation t and
    the updates the algorithm makes after it (which weight groups learn, whether the value nodes move, the hooks).
    Benchmarks time single steps of it; `train_batch` runs all T.

    `groups`: the schedule's weight groups (`pclm.training.groups.layer_groups`), which `learning_groups` indexes;
    default: the optimiser's parameter groups (right when they were built as `weight_groups`). A backend that owns
    its gradients steps whole optimiser groups by these indices, so there the two must be the same."""

    def __init__(
        self,
        gradients: Gradients,
        algorithm: Algorithm,
        optim_w: torch.optim.Optimizer,
        groups: list[list[torch.nn.Parameter]] | None = None,
    ) -> None:
        self.gradients, self.algorithm, self.optim_w = gradients, algorithm, optim_w
        self.groups = [list(g["params"]) for g in optim_w.param_groups] if groups is None else groups
        self.xs: list[torch.Tensor] = []  # the value nodes, once the first evaluation has created them
        self.x_lr = algorithm.inference_lr  # the inference step's lr, as the algorithm's hooks set it
        self.started = False
        self.stats = StepStats(math.nan, math.nan, math.nan)
        # Weights step through the optimiser's kernel where the backend allows it; an Adam's kernel needs the state
        # its first ordinary step creates, so it is looked for again once after that step.
        self.kernel = optimizer_kernel(_unwrap(optim_w)) if gradients.owns_grads else None
        self._look_again = gradients.owns_grads and self.kernel is None

    def step(self, t: int) -> tuple[float, torch.Tensor | float]:
        """Evaluation t and its updates; returns (F, mean output loss). Raises `Diverged` on a non-finite F."""
        algorithm = self.algorithm
        learn = algorithm.learning_groups(t, len(self.groups))
        # The value nodes of a fresh graph die with the batch: a step after its last evaluation changes nothing kept.
        move_x = (
            algorithm.uses_value_nodes
            and algorithm.updates_x(t)
            and (t < algorithm.steps - 1 or self.gradients.keep_values)
        )
        x_scale = 1.0 if algorithm.x_grads == "batch" else float(self._batch_size())
        value, loss = self.gradients.evaluate(learn, x_scale, move_x)
        if not math.isfinite(value):
            raise Diverged(f"energy is {value} at inference step {t}")
        if not self.started:
            self.started = True
            self.stats.loss, self.stats.energy_first = float(loss), value
            self.xs = self.gradients.values()
            self.x_lr = algorithm.start_batch()
        self.stats.energy_last = value
        self.x_lr = algorithm.observe_energy(t, value, self.x_lr)
        if learn:
            self._step_weights(learn)
        if move_x and self.xs:  # plain SGD: x -= lr * grad, at the lr the hooks set
            with torch.no_grad():
                moving = [x for x in self.xs if x.grad is not None]
                torch._foreach_add_(moving, [x.grad for x in moving], alpha=-self.x_lr)
        for x in self.xs:
            x.grad = None
        return value, loss

    def _step_weights(self, learn: list[int]) -> None:
        """The optimiser's step on the groups in `learn` only; a weight the error has not reached yet (no gradient)
        takes its step on an exact zero gradient, as the full graph would give it."""
        if self.gradients.owns_grads:  # the backend set exactly these gradients, and overwrites them next time
            if self.kernel is not None:
                with torch.no_grad():
                    self.kernel(learn)
                return
            self.optim_w.step()
            if self._look_again:  # the optimiser's state exists now
                self._look_again = False
                self.kernel = optimizer_kernel(_unwrap(self.optim_w))
            return
        for i, group in enumerate(self.groups):
            for p in group:
                if i not in learn:
                    p.grad = None
                elif p.grad is None and p.requires_grad:
                    p.grad = torch.zeros_like(p)
        self.optim_w.step()
        self.optim_w.zero_grad(set_to_none=True)

    def finish(self) -> None:
        """Drop the gradients the batch left behind."""
        if self.gradients.owns_grads:  # plain assignments: the optimiser's zero_grad costs more than this batch's math
            for group in self.groups:
                for p in group:
                    p.grad = None
        else:
            self.optim_w.zero_grad(set_to_none=True)

    def _batch_size(self) -> int:
        return self.gradients.batch_size


def _unwrap(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimiser inside Accelerate's wrapper (in one process without a grad scaler, the wrapper's step is
    the optimiser's step with extra bookkeeping)."""
    return getattr(optimizer, "optimizer", optimizer)
