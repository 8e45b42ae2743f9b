"""One mini-batch of training, the same code for every algorithm: evaluate the energy, take one backward for all
local gradients, then let the algorithm's schedule say what moves."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext

import torch

from ..algorithms import Algorithm, Diverged, StepStats
from ..pc import EnergyFn, EnergyGraph
from .compiled import CompiledEnergy

__all__ = ["Diverged", "StepStats", "evaluate_energy", "train_batch", "weight_groups"]

_NO_NODES: Callable[[str], EnergyFn | None] = lambda name: None  # noqa: E731


def weight_groups(model: torch.nn.Module) -> list[dict]:
    """Optimiser parameter groups: one per layer, nearest the output first, for models that define `pc_layers()`
    (chains, used by Z-IL); one group otherwise."""
    layers = getattr(model, "pc_layers", None)
    if layers is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return [{"params": list(params)} for params in layers()]


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
    """Train on one mini-batch with `algorithm`'s schedule.

    `select` says which positions are value nodes (ignored by algorithms without value nodes). The value nodes
    are created by the first forward pass (feedforward initialisation) and live only in this call; their optimiser
    is plain SGD at `algorithm.inference_lr`. With several processes, weight gradients are all-reduced only on
    evaluations that update weights; value-node gradients are never synchronised.
    `graph`: an energy graph to run on instead of a fresh one. Full-batch training passes the same graph to every
    call, so the value nodes persist across weight updates (no re-initialisation, iPC's full-batch mode).
    `compiled`: get the gradients from `compiled` (a `CompiledEnergy` of `model`) instead of an eager forward and
    backward; everything else is the same. The value nodes are then created by a feedforward pass without gradients.
    `fused`: a `pclm.vision.FusedMLP` of `model`; it runs the whole mini-batch in closed form, with the same updates.
    """
    if fused is not None:
        if graph is not None:
            raise ValueError("a fused mini-batch creates its own value nodes; it cannot run on a given graph")
        return fused.train_batch(batch, algorithm, optim_w)
    batch_size = next(iter(batch.values())).shape[0]
    if graph is None:
        graph = EnergyGraph(select if algorithm.uses_value_nodes else _NO_NODES, batch_size)
    groups = optim_w.param_groups
    optim_x = None
    stats = StepStats(math.nan, math.nan, math.nan)
    for t in range(algorithm.steps):
        learn = algorithm.learning_groups(t, len(groups))
        value, loss = evaluate_energy(model, batch, graph, learn, accelerator, compiled)
        if not math.isfinite(value):
            raise Diverged(f"energy is {value} at inference step {t}")
        if t == 0:
            stats.loss, stats.energy_first = float(loss), value
            if graph.x:
                optim_x = torch.optim.SGD(graph.values(), lr=algorithm.inference_lr)
            algorithm.start_batch(optim_x)
        stats.energy_last = value
        algorithm.observe_energy(t, value, optim_x)
        if algorithm.x_grads == "sample":
            graph.scale_value_grads()
        if learn:
            for i, group in enumerate(groups):
                for p in group["params"]:
                    if i not in learn:
                        p.grad = None
                    elif p.grad is None and p.requires_grad:  # not reached by the error yet: exactly zero
                        p.grad = torch.zeros_like(p)
            optim_w.step()
            optim_w.zero_grad(set_to_none=True)
        if optim_x is not None:
            if algorithm.updates_x(t):
                optim_x.step()
            optim_x.zero_grad(set_to_none=True)
    return stats


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
