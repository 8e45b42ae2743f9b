"""A compiled way to get the same local gradients: `train.compile: true`.

Eager `train_batch` evaluates the energy with the model's ordinary forward and takes one autograd backward. For a
small network most of that time is Python and dispatch, not arithmetic. `CompiledEnergy` computes the SAME
quantities (dF/dtheta for every weight, dF/dx for every value node, F and the output loss) as one function of
explicit tensors,

    (dF/dparams, dF/dx), (F, loss) = grad_and_value(F)(params, x, batch)       torch.func

with the model called through `torch.func.functional_call` on an energy graph whose value nodes are those `x`, and
hands that function to `torch.compile`, which traces forward and backward into one graph and fuses the
elementwise work (activations, errors, their derivatives) into generated C++ / Triton kernels. The gradients are
then written into `.grad` exactly where autograd's backward would have put them, so the optimisers, the algorithm's
schedule and the rest of `train_batch` run unchanged: this is an execution mode of the same energy, not a second
implementation of it (tests/training/test_compiled.py checks it against the eager path, step by step, for every
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

from ..errors import UsageError
from ..pc import EnergyFn, EnergyGraph

__all__ = ["CompiledEnergy", "check_compile"]


def check_compile(enabled: bool, accelerator, setting: str = "train.compile") -> None:
    """`train.compile=true` (and `train.fused=true`, passed as `setting`) needs one process and no mixed precision;
    anything else is a one-line `UsageError` (raised before a run writes anything)."""
    if enabled and (accelerator.num_processes > 1 or accelerator.mixed_precision != "no"):
        raise UsageError(f"{setting}=true runs in one process without mixed precision")


class CompiledEnergy:
    """The energy gradients of `model` on graphs built with `select`, through one compiled function per kind of
    evaluation (with weight gradients, or value-node gradients only: PC's inference steps).

    Args:
        model: the module `train_batch` trains (its trainable parameters are listed once, here; their values are
            read at every call).
        backend: `torch.compile` backend; "inductor" generates fused kernels, "aot_eager" traces the same graphs
            without code generation (fast to build; the tests use it), None runs the functional path uncompiled.
    """

    def __init__(self, model: torch.nn.Module, backend: str | None = "inductor") -> None:
        self.model = model
        self.backend = backend
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
            self._fns[key] = fn if self.backend is None else torch.compile(fn, backend=self.backend, dynamic=False)
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
