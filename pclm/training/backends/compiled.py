"""The compiled backend (`train.backend: compiled`): the same local gradients as autograd's, from one compiled function.

The autograd backend evaluates the energy with the model's ordinary forward and takes one autograd backward. For a
small network most of that time is Python and dispatch, not arithmetic. `CompiledEnergy` computes the SAME
quantities (dF/dtheta for every weight, dF/dx for every value node, F and the output loss) as one function of
explicit tensors,

    (dF/dparams, dF/dx), (F, loss) = grad_and_value(F)(params, x, batch)       torch.func

with the model called through `torch.func.functional_call` on an energy graph whose value nodes are those `x`, and
hands that function to `torch.compile`, which traces forward and backward into one graph and fuses the
elementwise work (activations, errors, their derivatives) into generated C++ / Triton kernels. The gradients are
then written into `.grad` exactly where autograd's backward would have put them, so the optimisers, the algorithm's
schedule and the rest of `train_batch` run unchanged: this is an execution mode of the same energy, not a second
implementation of it (tests/training/test_compiled.py checks it against autograd, step by step, for every
algorithm).

Costs and limits: each new batch shape compiles once (the last, smaller batch of an epoch is a second shape); one
process only; no autocast. The value nodes are still created by an eager feedforward pass (no gradients) at the
start of each batch. Measurements of this mode: docs/lab_notes.md.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping

import torch
from torch.func import functional_call, grad_and_value

from ...algorithms import Algorithm
from ...pc import EnergyFn, EnergyGraph
from .autograd import NO_NODES, scale_x_grads

__all__ = ["Compiled", "CompiledEnergy", "CompiledGradients"]


class Compiled:
    """The compiled backend of `model`, with value nodes where `select` puts them (none for an algorithm without
    value nodes); `torch_backend` as in `CompiledEnergy`. A fresh energy graph per mini-batch."""

    def __init__(
        self, model: torch.nn.Module, select: Callable[[str], EnergyFn | None], torch_backend: str | None = "inductor"
    ) -> None:
        self.select = select
        self.energy = CompiledEnergy(model, torch_backend)

    def begin(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor], algorithm: Algorithm):
        select = self.select if algorithm.uses_value_nodes else NO_NODES
        return CompiledGradients(model, batch, EnergyGraph(select, next(iter(batch.values())).shape[0]), self.energy)


class CompiledGradients:
    """One mini-batch's gradients from `energy`'s compiled function, on `graph`; the value nodes are created by a
    feedforward pass without gradients at the first evaluation."""

    owns_grads = False
    keep_values = False

    def __init__(self, model, batch, graph: EnergyGraph, energy: CompiledEnergy) -> None:
        self.model, self.batch, self.graph, self.energy = model, batch, graph, energy
        self.batch_size = graph.batch_size

    def evaluate(self, learn: list[int], x_scale: float, need_x: bool) -> tuple[float, torch.Tensor]:
        graph = self.graph
        if not graph.node_energies:  # no pass on this graph yet (the output node is recorded by every pass)
            with torch.no_grad():
                self.model(**self.batch, nodes=graph)
            for x in graph.values():
                x.requires_grad_(True)
        energy, loss = self.energy.evaluate(graph, self.batch, weights=bool(learn))
        value = energy.item()
        scale_x_grads(graph, value, x_scale)
        return value, loss

    def values(self) -> list[torch.Tensor]:
        return self.graph.values()


class CompiledEnergy:
    """The energy gradients of `model` on graphs built with `select`, through one compiled function per kind of
    evaluation (with weight gradients, or value-node gradients only: PC's inference steps).

    Args:
        model: the module `train_batch` trains (its trainable parameters are listed once, here; their values are
            read at every call).
        torch_backend: `torch.compile` backend; "inductor" generates fused kernels, "aot_eager" traces the same graphs
            without code generation (fast to build; the tests use it), None runs the functional path uncompiled.
    """

    def __init__(self, model: torch.nn.Module, torch_backend: str | None = "inductor") -> None:
        self.model = model
        self.torch_backend = torch_backend
        self._named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self._fns: dict[tuple[bool, int, int], Callable] = {}

    def _energy(self, params: dict, xs: dict, batch: dict, select: Callable[[str], EnergyFn | None], batch_size: int):
        graph = EnergyGraph(select, batch_size)
        graph.x = dict(xs)  # every node already exists: the pass reads x, never initialises it
        # The fused readout decides in Python which gradients to form (requires_grad); under Dynamo's tracing that
        # check does not see torch.func's gradient tracking, so the compiled path takes the plain logits.
        graph.fused_readout = False
        out = functional_call(self.model, params, (), {**batch, "nodes": graph})
        return graph.energy(), out.loss.detach()

    def _fn(self, weights: bool, select: Callable, batch_size: int) -> Callable:
        key = (weights, id(select), batch_size)
        if key not in self._fns:

            def energy(params, xs, batch):
                return self._energy(params, xs, batch, select, batch_size)

            grads = grad_and_value(energy, argnums=(0, 1) if weights else 1, has_aux=True)

            def evaluate(params, xs, batch):
                return grads(params, xs, batch)

            # Dynamo keeps its compiled graphs (and checks their guards on every call) per code object. A code
            # object of its own per model and kind keeps one model's calls from walking another's cache entries,
            # and many models in one process (benchmarks, sweeps) from reaching the recompile limit.
            code = evaluate.__code__.replace(co_name=f"pclm_energy_{id(self):x}_{len(self._fns)}")
            fn = types.FunctionType(code, evaluate.__globals__, code.co_name, None, evaluate.__closure__)
            self._fns[key] = (
                fn if self.torch_backend is None else torch.compile(fn, backend=self.torch_backend, dynamic=False)
            )
        return self._fns[key]

    def evaluate(
        self,
        graph: EnergyGraph,
        batch: Mapping[str, torch.Tensor],
        weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate the energy on `graph`'s value nodes (which must exist) and write dF/dx into each node's `.grad`
        and, when `weights`, dF/dtheta into each trainable parameter's `.grad`. Returns (F, mean output loss)."""
        params = {name: p.detach() for name, p in self._named}
        xs = {name: x.detach() for name, x in graph.x.items()}
        grads, (energy, loss) = self._fn(weights, graph.select, graph.batch_size)(params, xs, dict(batch))
        grad_params, grad_xs = grads if weights else ({}, grads)
        for name, x in graph.x.items():
            x.grad = grad_xs[name]
        if weights:
            for name, p in self._named:
                p.grad = grad_params[name]
        return energy, loss
