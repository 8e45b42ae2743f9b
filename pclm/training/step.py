"""One mini-batch of training, the same code for every algorithm: evaluate the energy, take one backward for all
local gradients, then let the algorithm's schedule say what moves."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Protocol

import torch

from ..algorithms import Algorithm, Diverged, StepStats
from ..pc import EnergyFn, EnergyGraph
from .compiled import CompiledEnergy
from .groups import layer_groups, weight_groups
from .optimizer_kernels import optimizer_kernel

__all__ = [
    "AutogradGradients",
    "BatchRun",
    "Diverged",
    "Gradients",
    "StepStats",
    "evaluate_energy",
    "train_batch",
    "layer_groups",
    "weight_groups",
]

_NO_NODES: Callable[[str], EnergyFn | None] = lambda name: None  # noqa: E731


def train_batch(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    algorithm: Algorithm,
    optim_w: torch.optim.Optimizer,
    select: Callable[[str], EnergyFn | None],
    accelerator=None,
    graph: EnergyGraph | None = None,
    compiled: CompiledEnergy | None = None,
    fused=None,
) -> StepStats:
    """Train on one mini-batch with `algorithm`'s schedule: `BatchRun.step` for t = 0 .. T-1.

    `select` says which positions are value nodes (ignored by algorithms without value nodes). The value nodes
    are created by the first forward pass (feedforward initialisation) and live only in this call; their optimiser
    is plain SGD at `algorithm.inference_lr`. With several processes, weight gradients are all-reduced only on
    evaluations that update weights; value-node gradients are never synchronised.
    `graph`: an energy graph to run on instead of a fresh one. Full-batch training passes the same graph to every
    call, so the value nodes persist across weight updates (no re-initialisation, iPC's full-batch mode).
    The gradients come from one of three backends, chosen here; the schedule is the same for all of them:
    autograd (the model's forward and one backward), `compiled` (a `CompiledEnergy` of `model`: the same gradients
    from one compiled function) or `fused` (a `pclm.vision.FusedMLP` of `model`: the MLP's gradients in closed form).
    The schedule's weight groups are the model's own (`layer_groups`), whatever `optim_w`'s parameter groups are.
    """
    if fused is not None:
        if graph is not None:
            raise ValueError("a fused mini-batch creates its own value nodes; it cannot run on a given graph")
        if compiled is not None:
            raise ValueError("fused and compiled gradients exclude each other")
        gradients = fused.begin(batch, algorithm)
    else:
        keep = graph is not None
        if graph is None:
            graph = EnergyGraph(
                select if algorithm.uses_value_nodes else _NO_NODES, next(iter(batch.values())).shape[0]
            )
        gradients = AutogradGradients(model, batch, graph, accelerator, compiled, keep_values=keep)
    run = BatchRun(gradients, algorithm, optim_w, layer_groups(model))
    for t in range(algorithm.steps):
        run.step(t)
    run.finish()
    return run.stats


class Gradients(Protocol):
    """A gradient backend for one mini-batch: it evaluates the energy and fills gradients, and decides nothing.

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


class AutogradGradients:
    """Gradients by autograd on an energy graph (`evaluate_energy`), or from a `CompiledEnergy` of the model."""

    owns_grads = False

    def __init__(self, model, batch, graph: EnergyGraph, accelerator=None, compiled=None, keep_values=False) -> None:
        self.model, self.batch, self.graph = model, batch, graph
        self.accelerator, self.compiled, self.keep_values = accelerator, compiled, keep_values
        self.batch_size = graph.batch_size

    def evaluate(self, learn: list[int], x_scale: float, need_x: bool) -> tuple[float, torch.Tensor]:
        value, loss = evaluate_energy(self.model, self.batch, self.graph, learn, self.accelerator, self.compiled)
        if x_scale != 1 and math.isfinite(value):
            for x in self.graph.x.values():
                if x.grad is not None:
                    x.grad.mul_(x_scale)
        return value, loss

    def values(self) -> list[torch.Tensor]:
        return self.graph.values()


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
        self.optim_x: torch.optim.Optimizer | None = None
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
            values = self.gradients.values()
            if values:
                self.optim_x = torch.optim.SGD(values, lr=algorithm.inference_lr)
            algorithm.start_batch(self.optim_x)
        self.stats.energy_last = value
        algorithm.observe_energy(t, value, self.optim_x)
        if learn:
            self._step_weights(learn)
        if self.optim_x is not None:
            xs = self.optim_x.param_groups[0]["params"]
            if move_x:  # plain SGD: x -= lr * grad, as torch.optim.SGD computes it, at the lr the hooks set
                with torch.no_grad():
                    moving = [x for x in xs if x.grad is not None]
                    torch._foreach_add_(moving, [x.grad for x in moving], alpha=-self.optim_x.param_groups[0]["lr"])
            for x in xs:
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


def evaluate_energy(
    model, batch, graph: EnergyGraph, learn: list[int], accelerator=None, compiled: CompiledEnergy | None = None
) -> tuple[float, torch.Tensor]:
    """One evaluation of the energy on `graph` with every local gradient in `.grad`: dF/dx always, dF/dtheta when
    `learn` names a weight group. Eager: a forward, then one backward (nothing is backpropagated from a non-finite
    F). With `compiled`: the same gradients from its compiled function; on a graph no pass has run on yet, the
    value nodes are first created by a feedforward pass without gradients. Returns (F, mean output loss)."""
    if compiled is not None:
        if not graph.node_energies:  # no pass on this graph yet (the output node is recorded by every pass)
            with torch.no_grad():
                model(**batch, nodes=graph)
            for x in graph.values():
                x.requires_grad_(True)
        energy, loss = compiled.evaluate(graph, batch, weights=bool(learn))
        return energy.item(), loss
    graph.learning = bool(learn)  # an inference-only evaluation: the fused readout skips dF/dW
    # Settled nodes carry no energy in the backward; DDP expects every weight's gradient, so one process only.
    graph.prune_settled = accelerator is None or accelerator.num_processes == 1
    sync = nullcontext() if learn or accelerator is None else accelerator.no_sync(model)
    autocast = nullcontext() if accelerator is None else accelerator.autocast()
    with sync:
        with autocast:
            out = model(**batch, nodes=graph)
        energy = graph.energy()
        value = energy.item()
        if accelerator is not None and accelerator.num_processes > 1:  # every rank stops together
            value = float(accelerator.reduce(energy.detach().reshape(1), reduction="sum")) / accelerator.num_processes
        if not math.isfinite(value):
            return value, out.loss
        inputs = None if learn else graph.values()  # inference only: skip the weight gradients
        if inputs is None or inputs:
            if accelerator is None:
                energy.backward(inputs=inputs)
            else:
                accelerator.backward(energy, inputs=inputs)
    return value, out.loss
