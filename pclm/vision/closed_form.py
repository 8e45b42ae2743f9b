"""The vision MLP's mini-batch in closed form: `train.backend: closed_form`.

For the chain of `pclm.vision.MLP` (and of its layer-parallel form `StackedMLP`) every local gradient of the energy
has a closed form. With r_l = mu_l - x_l (minus the error), pre-activations a_l = x_{l-1} W_l^T + b_l, x_0 the
(normalised) image and G_l = B dF/da_l = act'(a_l) * r_l for a hidden layer, softmax(logits) - onehot(label) for
the output layer:

    B F           = sum_l 1/2 ||r_l||^2 + cross-entropy
    dF/dW_l       = G_l^T x_{l-1} / B          dF/db_l = sum over the batch of G_l / B
    B dF/dx_l     = -r_l + G_{l+1} W_{l+1}      (x.grad under the per-sample convention, `Algorithm.x_grads`)

These are exactly what autograd's backward of `EnergyGraph.energy()` produces. `ClosedFormMLP` is a gradient backend
(`pclm.training.backends`; `train_batch(model, batch, algorithm, optim, ClosedFormMLP(model, optim))`): it only fills
these gradients; the schedule (which groups learn, when x moves, PC's hooks, the optimisers) runs in `BatchRun`,
the same as for autograd (tests/vision/test_closed_form.py checks every algorithm and activation, step by step). What
it removes is the overhead around the arithmetic of an inference step: no autograd graph, no per-node Python, every
hidden layer's activation, error and activation derivative computed once over all layers stacked ((D-1, B, W): one
call each, which also lets them use several cores), weight and value-node gradients written into preallocated
buffers.

One shortcut, exact: the first evaluation after the feedforward initialisation has x = mu, so every hidden error
and hidden G is exactly zero; its hidden weight gradients are zeros and its forward pass is the initialisation
itself, so neither is recomputed.

BP (no value nodes) is the same chain run as backprop: a feedforward pass, then G_l = act'(a_l) * (G_{l+1} W_{l+1})
from the output down, and the same weight gradients.

On a `StackedMLP` the hidden-to-hidden layers are one (D-2, W, W) weight, so every layer's prediction, error
propagation and weight gradient is one batched matmul (`torch.baddbmm`): an iPC step issues the same few operations
at any depth (SPEC.md section 3, the layer-parallel mode); BP on it is not offered (its passes are sequential).

Limits: `MLP` (any depth >= 1) or `StackedMLP`, tanh / relu / gelu, the weight groups of
`pclm.training.step.weight_groups` (per layer, nearest the output first, for the MLP; one group for StackedMLP),
one process, no autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .mlp import MLP
from .parallel_mlp import StackedMLP

__all__ = ["ClosedFormBatch", "ClosedFormMLP"]


def _derivative(name: str):
    """act'(a) * grad for the activation `name`, from a (pre-activation) and mu = act(a): autograd's own kernels."""
    if name == "tanh":
        return lambda grad, a, mu: torch.ops.aten.tanh_backward(grad, mu)
    if name == "relu":
        return lambda grad, a, mu: torch.ops.aten.threshold_backward(grad, mu, 0)
    if name == "gelu":
        return lambda grad, a, mu: torch.ops.aten.gelu_backward(grad, a)
    raise UsageError(f"train.backend=closed_form supports the activations tanh, relu and gelu, not '{name}'")


class _Chain:
    """The layers of an `MLP`: one matmul per layer; one parameter group per layer, nearest the output first.
    The hidden layers' bias gradients, and the weight gradients of the hidden-to-hidden layers, live in stacked
    buffers (their rows are the parameters' `.grad`), so a step that trains every layer fills each with one call."""

    def __init__(self, mlp: MLP) -> None:
        self.layers = list(mlp.layers)
        self.out = self.layers[-1]
        self.W = [layer.weight for layer in self.layers]
        self.b = [layer.bias for layer in self.layers]
        n, width = len(self.layers), self.layers[0].out_features
        like = self.W[0]
        self.grad_W = [torch.empty_like(w) for w in self.W]
        self.grad_b = [torch.empty_like(b) for b in self.b]
        if n >= 2:  # rows of one (D-1, W) buffer: the hidden layers' bias gradients
            self.grad_b_hidden = torch.empty(n - 1, width, dtype=like.dtype, device=like.device)
            self.grad_b[:-1] = list(self.grad_b_hidden.unbind(0))
        if n >= 3:  # one (D-2, W, W) buffer: the hidden-to-hidden weight gradients
            self.grad_W_inner = torch.empty(n - 2, width, width, dtype=like.dtype, device=like.device)
            self.grad_W[1:-1] = list(self.grad_W_inner.unbind(0))

    def groups(self) -> list[list[torch.Tensor]]:
        return [[w, b] for w, b in zip(reversed(self.W), reversed(self.b))]

    def feedforward(self, act, x0, a, x) -> None:
        """a_l and x_l = mu_l = act(a_l) of a feedforward pass, layer after layer."""
        inputs = (x0, *x.unbind(0))
        for l in range(len(self.layers) - 1):
            torch.addmm(self.b[l], inputs[l], self.W[l].t(), out=a[l])
            x[l] = act(a[l])

    def predict(self, x0, x, a) -> None:
        """Every hidden pre-activation from the value nodes, a_l = x_{l-1} W_l^T + b_l."""
        inputs, a_l = (x0, *x.unbind(0)), a.unbind(0)
        for l in range(len(self.layers) - 1):
            torch.addmm(self.b[l], inputs[l], self.W[l].t(), out=a_l[l])

    def propagate(self, r, G, dx) -> None:
        """dx_l = -r_l + G_{l+1} W_{l+1} for every hidden node below the top one."""
        r_l, G_l, dx_l = r.unbind(0), G.unbind(0), dx.unbind(0)
        for l in range(len(self.layers) - 2):
            torch.addmm(r_l[l], G_l[l + 1], self.W[l + 1], beta=-1, out=dx_l[l])

    def backprop(self, act_grad, a, x, G, g_out) -> None:
        """BP: G_l = act'(a_l) * (G_{l+1} W_{l+1}), from the output down (x holds the feedforward activations)."""
        above = g_out
        for l in range(len(self.layers) - 2, -1, -1):
            G[l] = act_grad(above @ self.W[l + 1], a[l], x[l])
            above = G[l]

    def set_grads(self, x0, x, G, g_out, learn: list[int]) -> None:
        """dF/dtheta of every layer in a learning group, None for the others (G None: the hidden G are zero)."""
        n, B = len(self.layers), x0.shape[0]
        hidden = [l for l in range(n - 1) if n - 1 - l in learn]
        if len(hidden) == n - 1 and n >= 3:  # every hidden layer: stacked calls
            if G is None:
                self.grad_b_hidden.zero_()
                self.grad_W_inner.zero_()
                self.grad_W[0].zero_()
            else:
                torch.mean(G, 1, out=self.grad_b_hidden)
                torch.baddbmm(
                    self.grad_W_inner, G[1:].transpose(1, 2), x[:-1], beta=0, alpha=1.0 / B, out=self.grad_W_inner
                )
                torch.addmm(self.grad_W[0], G[0].t(), x0, beta=0, alpha=1.0 / B, out=self.grad_W[0])
        else:
            inputs = (x0, *x.unbind(0))
            for l in hidden:
                if G is None:
                    self.grad_W[l].zero_()
                    self.grad_b[l].zero_()
                else:
                    torch.addmm(self.grad_W[l], G[l].t(), inputs[l], beta=0, alpha=1.0 / B, out=self.grad_W[l])
                    torch.mean(G[l], 0, out=self.grad_b[l])
        if 0 in learn:  # the output layer
            torch.addmm(self.grad_W[-1], g_out.t(), x[-1] if n > 1 else x0, beta=0, alpha=1.0 / B, out=self.grad_W[-1])
            torch.mean(g_out, 0, out=self.grad_b[-1])
        for l in range(n):
            on = n - 1 - l in learn
            self.W[l].grad = self.grad_W[l] if on else None
            self.b[l].grad = self.grad_b[l] if on else None


class _Stack:
    """The layers of a `StackedMLP`: the input layer, then every hidden-to-hidden layer at once as one batched
    matmul over the (D-2, W_in, W_out) weight; one parameter group."""

    def __init__(self, model: StackedMLP) -> None:
        self.model = model
        self.out = model.out
        self.grads = {p: torch.empty_like(p) for p in model.parameters()}  # parameter -> its gradient buffer

    def groups(self) -> list[list[torch.Tensor]]:
        return [list(self.model.parameters())]

    def feedforward(self, act, x0, a, x) -> None:
        m = self.model
        torch.addmm(m.inp.bias, x0, m.inp.weight.t(), out=a[0])
        x[0] = act(a[0])
        for l in range(1, a.shape[0]):
            torch.addmm(m.bias[l - 1], x[l - 1], m.weight_t[l - 1], out=a[l])
            x[l] = act(a[l])

    def predict(self, x0, x, a) -> None:
        m = self.model
        torch.addmm(m.inp.bias, x0, m.inp.weight.t(), out=a[0])
        if m.weight_t.shape[0]:
            torch.baddbmm(m.bias.unsqueeze(1), x[:-1], m.weight_t, out=a[1:])

    def propagate(self, r, G, dx) -> None:
        if self.model.weight_t.shape[0]:
            torch.baddbmm(r[:-1], G[1:], self.model.weight_t.transpose(1, 2), beta=-1, out=dx[:-1])

    def backprop(self, act_grad, a, x, G, g_out) -> None:
        raise UsageError("train.backend=closed_form runs BP on the sequential MLP, not on StackedMLP")

    def set_grads(self, x0, x, G, g_out, learn: list[int]) -> None:
        m = self.model
        params = list(m.parameters())
        if 0 not in learn:
            for p in params:
                p.grad = None
            return
        grads = self.grads
        B = x0.shape[0]
        if G is None:  # x == mu: the hidden G are zero
            for p in (m.inp.weight, m.inp.bias, m.weight_t, m.bias):
                grads[p].zero_()
        else:
            torch.addmm(grads[m.inp.weight], G[0].t(), x0, beta=0, alpha=1.0 / B, out=grads[m.inp.weight])
            torch.mean(G[0], 0, out=grads[m.inp.bias])
            if B == 1:  # a batch of outer products: the broadcast product, several times faster than bmm on a CPU
                torch.mul(x[:-1].transpose(1, 2), G[1:], out=grads[m.weight_t])
            else:
                torch.baddbmm(
                    grads[m.weight_t], x[:-1].transpose(1, 2), G[1:], beta=0, alpha=1.0 / B, out=grads[m.weight_t]
                )
            torch.mean(G[1:], 1, out=grads[m.bias])
        torch.addmm(grads[m.out.weight], g_out.t(), x[-1], beta=0, alpha=1.0 / B, out=grads[m.out.weight])
        torch.mean(g_out, 0, out=grads[m.out.bias])
        for p in params:
            p.grad = grads[p]


class ClosedFormMLP:
    """Closed-form gradients for a `pclm.vision.MLP` or `StackedMLP` (or a module holding one as `.model` with
    per-channel `mean`/`std` buffers, as `pclm.vision.classifier.Normalized` does), trained by `optim_w`: a gradient
    backend (`pclm.training.backends.Backend`) whose value nodes are every hidden layer (it takes no `select`)."""

    def __init__(self, model: torch.nn.Module, optim_w: torch.optim.Optimizer) -> None:
        inner = getattr(model, "model", model)
        if isinstance(inner, MLP):
            self.chain, self.width, self.hidden = _Chain(inner), inner.layers[0].out_features, len(inner.layers) - 1
        elif isinstance(inner, StackedMLP):
            self.chain, self.width, self.hidden = _Stack(inner), inner.inp.out_features, inner.depth - 1
        else:
            raise UsageError(f"train.backend=closed_form needs model.name=mlp, not {type(inner).__name__}")
        self.norm = (model.mean, model.std) if inner is not model else None
        self.act = inner.act
        self.act_grad = _derivative(inner.act_name)
        expected = self.chain.groups()
        groups = [list(group["params"]) for group in getattr(optim_w, "optimizer", optim_w).param_groups]
        if len(groups) != len(expected) or any(
            len(g) != len(e) or any(p is not q for p, q in zip(g, e)) for g, e in zip(groups, expected)
        ):
            what = (
                "one weight group per layer, nearest the output first" if isinstance(inner, MLP) else "one weight group"
            )
            raise UsageError(f"train.backend=closed_form needs {what} (pclm.training.step.weight_groups)")
        self._buffers: dict[tuple[int, torch.dtype, torch.device], dict[str, torch.Tensor]] = {}

    def _buffers_for(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pre-activations a, value nodes x, their steps dx and the hidden G: (D-1, B, W) each."""
        key = (like.shape[0], like.dtype, like.device)
        if key not in self._buffers:
            shape = (self.hidden, like.shape[0], self.width)
            self._buffers[key] = {
                name: torch.empty(shape, dtype=like.dtype, device=like.device) for name in ("a", "x", "dx", "G")
            }
        return self._buffers[key]

    @torch.no_grad()
    def begin(self, model, batch, algorithm) -> ClosedFormBatch:
        """A mini-batch's gradients (`pclm.training.backends.Gradients`): the normalised images and the value nodes
        after the feedforward initialisation. `model` is the one given at construction (its weights are read from
        there)."""
        images, labels = batch["pixel_values"], batch["labels"]
        if self.norm is not None:
            images = (images - self.norm[0]) / self.norm[1]
        x0 = images.flatten(1)
        onehot = F.one_hot(labels, self.chain.out.out_features).to(x0.dtype)
        state = ClosedFormBatch(self, algorithm.uses_value_nodes, x0, labels, onehot, self._buffers_for(x0))
        self.chain.feedforward(self.act, x0, state.a, state.x)  # x = mu: also the first evaluation's predictions
        out = self.chain.out
        state.top = state.x[-1] if self.hidden else x0  # the output layer's input
        state.out_weight, state.out_bias = out.weight, out.bias
        state.out_weight_t = out.weight.t()
        return state


class ClosedFormBatch:
    """One mini-batch of `ClosedFormMLP`: the gradients `BatchRun` steps. Inputs, labels and the (D-1, B, W)
    buffers a, x, dx, G; r = mu - x. The value nodes are the one tensor x (hidden layers stacked)."""

    keep_values = False  # the value nodes die with the batch
    owns_grads = True  # `set_grads` assigns every weight's .grad at each evaluation; one process, no autocast

    def __init__(self, engine: ClosedFormMLP, value_nodes: bool, x0, labels, onehot, buffers: dict[str, torch.Tensor]):
        self.engine, self.value_nodes = engine, value_nodes
        self.x0, self.labels, self.onehot = x0, labels, onehot
        self.batch_size = x0.shape[0]
        self.a, self.x, self.dx, self.G = buffers["a"], buffers["x"], buffers["dx"], buffers["G"]
        self.mu = self.r = None
        self.evaluations = 0
        self.top = self.out_weight = self.out_weight_t = self.out_bias = None  # set by `ClosedFormMLP.begin`

    def values(self) -> list[torch.Tensor]:
        return [self.x] if self.value_nodes and self.engine.hidden else []

    @torch.no_grad()
    def evaluate(self, learn: list[int], x_scale: float, need_x: bool) -> tuple[float, float]:
        """F and the output loss on the current x and weights; dF/dtheta of the groups in `learn` into their
        `.grad`, and x_scale * dF/dx into x.grad when `need_x` (from the weights before they move)."""
        engine, chain = self.engine, self.engine.chain
        a, x, dx, B = self.a, self.x, self.dx, self.batch_size
        if self.evaluations and engine.hidden and self.value_nodes:
            chain.predict(self.x0, x, a)
            self.mu = engine.act(a)
            self.r = self.mu - x
        self.evaluations += 1
        r = self.r  # None while x == mu: then every hidden error and hidden G is exactly zero
        logits = torch.addmm(self.out_bias, self.top, self.out_weight_t)
        log_p = F.log_softmax(logits, dim=1)
        ce = float(F.nll_loss(log_p, self.labels, reduction="sum"))
        if r is not None:
            flat = r.view(-1)
            value = (ce + 0.5 * float(torch.dot(flat, flat))) / B
        else:
            value = ce / B
        if value != value or value in (float("inf"), float("-inf")):
            return value, ce / B
        g_out = log_p.exp_().sub_(self.onehot)  # B dF/dlogits
        G = None
        if not self.value_nodes:  # BP: the chain rule from the output down, on the feedforward pass
            if engine.hidden:
                G = self.G
                chain.backprop(engine.act_grad, a, x, G, g_out)
        elif r is not None:
            G = engine.act_grad(r, a, self.mu)  # every hidden layer at once
        if need_x and engine.hidden:  # B dF/dx = -r_l + G_{l+1} W_{l+1}
            if r is None:  # x == mu: only the top node has a non-zero gradient, from the output
                dx[:-1].zero_()
                torch.mm(g_out, self.out_weight, out=dx[-1])
            else:
                chain.propagate(r, G, dx)
                torch.addmm(r[-1], g_out, self.out_weight, beta=-1, out=dx[-1])
            if x_scale != B:
                dx.mul_(x_scale / B)
            x.grad = dx
        if learn:
            chain.set_grads(self.x0, x, G, g_out, learn)
        return value, ce / B
