"""The autograd backend (`train.backend: autograd`, the default): the model's forward on an energy graph, then one
backward for every local gradient."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext

import torch

from ...algorithms import Algorithm
from ...pc import EnergyFn, EnergyGraph

__all__ = ["Autograd", "AutogradGradients", "evaluate_energy", "NO_NODES"]

NO_NODES: Callable[[str], EnergyFn | None] = lambda name: None  # noqa: E731  (the output node only: BP)


class Autograd:
    """Gradients by autograd on an energy graph with value nodes where `select` puts them (none for an algorithm
    without value nodes).

    Args:
        select: the energy of each value node, by position name (`pclm.models.value_nodes.value_node_selector`).
        accelerator: with several processes, weight gradients are all-reduced only on evaluations that update
            weights; value-node gradients are never synchronised. None: one process, no autocast.
        keep_values: ONE energy graph for every call: the value nodes persist across weight updates, never
            re-initialised (iPC's full-batch mode; every call must then bring the same batch). False: a fresh graph,
            initialised by the first forward pass, per mini-batch.
        new_graph: builds a graph from (select, batch_size); `EnergyGraph` or a subclass of it.

    `graph`: the graph of the latest mini-batch (the kept one with `keep_values`), None before the first."""

    def __init__(
        self,
        select: Callable[[str], EnergyFn | None],
        accelerator=None,
        keep_values: bool = False,
        new_graph: Callable[[Callable[[str], EnergyFn | None], int], EnergyGraph] = EnergyGraph,
    ) -> None:
        self.select, self.accelerator, self.keep_values, self.new_graph = select, accelerator, keep_values, new_graph
        self.graph: EnergyGraph | None = None

    def begin(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor], algorithm: Algorithm):
        if self.graph is None or not self.keep_values:
            select = self.select if algorithm.uses_value_nodes else NO_NODES
            self.graph = self.new_graph(select, next(iter(batch.values())).shape[0])
        return AutogradGradients(model, batch, self.graph, self.accelerator, self.keep_values)


class AutogradGradients:
    """One mini-batch's gradients by autograd on `graph` (`evaluate_energy`)."""

    owns_grads = False

    def __init__(self, model, batch, graph: EnergyGraph, accelerator=None, keep_values: bool = False) -> None:
        self.model, self.batch, self.graph = model, batch, graph
        self.accelerator, self.keep_values = accelerator, keep_values
        self.batch_size = graph.batch_size

    def evaluate(self, learn: list[int], x_scale: float, need_x: bool) -> tuple[float, torch.Tensor]:
        value, loss = evaluate_energy(self.model, self.batch, self.graph, learn, self.accelerator)
        scale_x_grads(self.graph, value, x_scale)
        return value, loss

    def values(self) -> list[torch.Tensor]:
        return self.graph.values()


def scale_x_grads(graph: EnergyGraph, value: float, x_scale: float) -> None:
    """x.grad *= x_scale on every value node (after a finite evaluation; nothing to scale after another)."""
    if x_scale != 1 and math.isfinite(value):
        for x in graph.x.values():
            if x.grad is not None:
                x.grad.mul_(x_scale)


def evaluate_energy(model, batch, graph: EnergyGraph, learn: list[int], accelerator=None) -> tuple[float, torch.Tensor]:
    """One evaluation of the energy on `graph` with every local gradient in `.grad`: dF/dx always, dF/dtheta when
    `learn` names a weight group: a forward, then one backward (nothing is backpropagated from a non-finite F).
    Returns (F, mean output loss)."""
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
