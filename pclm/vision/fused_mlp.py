"""The vision MLP's mini-batch in closed form: `train.fused: true`.

For the chain of `pclm.vision.MLP` every local gradient of the energy has a closed form. With r_l = mu_l - x_l
(minus the error), pre-activations a_l = x_{l-1} W_l^T + b_l, x_0 the (normalised) image and
G_l = B dF/da_l = act'(a_l) * r_l for a hidden layer, softmax(logits) - onehot(label) for the output layer:

    B F           = sum_l 1/2 ||r_l||^2 + cross-entropy
    dF/dW_l       = G_l^T x_{l-1} / B          dF/db_l = sum over the batch of G_l / B
    B dF/dx_l     = -r_l + G_{l+1} W_{l+1}      (what `EnergyGraph.scale_value_grads` leaves in x.grad)

These are exactly what autograd's backward of `EnergyGraph.energy()` produces, so `FusedMLP.train_batch` makes the
same updates as `pclm.training.step.train_batch` (tests/test_fused_mlp.py checks every algorithm and activation,
step by step): it asks the same `Algorithm` what to update at each evaluation, calls the same hooks (PC's
inference-rate discount included), steps the same weight optimiser and moves the value nodes by SGD at the rate the
algorithm sets. What it removes is the overhead around ~1 ms of arithmetic per inference step: no autograd graph,
no per-node Python, every hidden layer's activation, error and activation derivative computed once over all layers
stacked ((D-1, B, W): one call each, which also lets them use both cores), weight and value-node gradients
written into preallocated buffers.

One shortcut, exact: the first evaluation after the feedforward initialisation has x = mu, so every hidden error
and hidden G is exactly zero; its hidden weight gradients are zeros and its forward pass is the initialisation
itself, so neither is recomputed.

Limits: the MLP only (any depth >= 1, tanh / relu / gelu), the weight optimiser built by `pclm.training.vision`
(one parameter group per layer, nearest the output first), one process, no autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .mlp import MLP

__all__ = ["FusedMLP"]


def _derivative(name: str):
    """act'(a) * grad for the activation `name`, from a (pre-activation) and mu = act(a): autograd's own kernels."""
    if name == "tanh":
        return lambda grad, a, mu: torch.ops.aten.tanh_backward(grad, mu)
    if name == "relu":
        return lambda grad, a, mu: torch.ops.aten.threshold_backward(grad, mu, 0)
    if name == "gelu":
        return lambda grad, a, mu: torch.ops.aten.gelu_backward(grad, a)
    raise UsageError(f"train.fused=true supports the activations tanh, relu and gelu, not '{name}'")


def _unwrap(optimizer):
    """The torch optimiser inside Accelerate's wrapper (in one process without a grad scaler, the wrapper's step is
    the optimiser's step with extra bookkeeping)."""
    return getattr(optimizer, "optimizer", optimizer)


def _fused_adam_step(optimizer: torch.optim.Optimizer, groups: list[dict]) -> bool:
    """The step that a fused torch Adam / AdamW takes on `groups` (all of whose parameters have gradients), as one
    call of the kernel its own `step()` calls (`torch._fused_adam(w)_`), without the ~0.2 ms of Python around it
    and one call for all groups when their settings agree. Returns False, having done nothing, for any other
    optimiser or setting, and before the optimiser's state exists (its first step creates it): then the caller
    steps it the ordinary way."""
    if not isinstance(optimizer, torch.optim.Adam):  # AdamW is an Adam with decoupled weight decay
        return False
    params = [p for group in groups for p in group["params"]]
    if any(not group.get("fused") or group["amsgrad"] or group["maximize"] or group["capturable"]
           or group["differentiable"] or isinstance(group["lr"], torch.Tensor) for group in groups):
        return False
    if any(p.grad is None or "step" not in optimizer.state.get(p, {}) for p in params):
        return False
    settings = {(group["lr"], *group["betas"], group["weight_decay"], group["eps"], group["decoupled_weight_decay"])
                for group in groups}
    for lr, beta1, beta2, weight_decay, eps, decoupled in settings:
        chosen = [p for group in groups for p in group["params"]
                  if (group["lr"], *group["betas"], group["weight_decay"], group["eps"],
                      group["decoupled_weight_decay"]) == (lr, beta1, beta2, weight_decay, eps, decoupled)]
        state = [optimizer.state[p] for p in chosen]
        steps = [s["step"] for s in state]
        torch._foreach_add_(steps, 1)
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        kernel(chosen, [p.grad for p in chosen], [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state],
               [], steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps,
               maximize=False, grad_scale=None, found_inf=None)
    return True


class FusedMLP:
    """`train_batch` for a `pclm.vision.MLP` (or a module holding one as `.model` with per-channel `mean`/`std`
    buffers, as `pclm.training.vision.Normalized` does), trained by `optim_w`."""

    def __init__(self, model: torch.nn.Module, optim_w: torch.optim.Optimizer) -> None:
        self.mlp = getattr(model, "model", model)
        if not isinstance(self.mlp, MLP):
            raise UsageError(f"train.fused=true needs model.name=mlp, not {type(self.mlp).__name__}")
        self.norm = (model.mean, model.std) if self.mlp is not model else None
        self.act = self.mlp.act
        self.act_grad = _derivative(self.mlp.act_name)
        self.layers = list(self.mlp.layers)
        expected = [[layer.weight, layer.bias] for layer in reversed(self.layers)]
        groups = [list(group["params"]) for group in _unwrap(optim_w).param_groups]
        if len(groups) != len(expected) or any(len(g) != 2 or g[0] is not e[0] or g[1] is not e[1]
                                               for g, e in zip(groups, expected)):
            raise UsageError("train.fused=true needs one weight group per layer, nearest the output first")
        self._buffers: dict[int, dict[str, torch.Tensor]] = {}

    def _buffers_for(self, batch_size: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        if batch_size not in self._buffers:
            hidden = (len(self.layers) - 1, batch_size, self.layers[0].out_features)
            new = lambda shape: torch.empty(shape, dtype=like.dtype, device=like.device)  # noqa: E731
            self._buffers[batch_size] = {"a": new(hidden), "x": new(hidden), "dx": new(hidden)}
        return self._buffers[batch_size]

    @torch.no_grad()
    def train_batch(self, batch, algorithm, optim_w: torch.optim.Optimizer):
        from ..training.step import Diverged, StepStats  # the training package imports this module's package

        if not algorithm.uses_value_nodes:
            raise UsageError("train.fused=true needs an algorithm with value nodes (pc, ipc or zil)")
        images, labels = batch["pixel_values"], batch["labels"]
        if self.norm is not None:
            images = (images - self.norm[0]) / self.norm[1]
        h0 = images.flatten(1)
        B, depth = h0.shape[0], len(self.layers)
        W = [layer.weight for layer in self.layers]
        b = [layer.bias for layer in self.layers]
        buf = self._buffers_for(B, h0)
        a, x, dx = buf["a"], buf["x"], buf["dx"]
        inputs = lambda l: h0 if l == 0 else x[l - 1]  # noqa: E731  (the input of weight layer l)
        hidden = depth - 1

        # feedforward initialisation: x = mu (its pre-activations a and mu are also the first evaluation's)
        for l in range(hidden):
            torch.addmm(b[l], inputs(l), W[l].t(), out=a[l])
            x[l] = self.act(a[l])
        mu = None
        onehot = F.one_hot(labels, W[-1].shape[0]).to(h0.dtype)
        optim_x = torch.optim.SGD([x], lr=algorithm.inference_lr)  # carries the rate PC's hooks adjust
        stats = StepStats(float("nan"), float("nan"), float("nan"))
        n_groups = depth
        fresh = True  # x == mu: every hidden error and hidden G is exactly zero
        r = G = None
        for t in range(algorithm.steps):
            learn = algorithm.learning_groups(t, n_groups)
            if not fresh:
                for l in range(hidden):
                    torch.addmm(b[l], inputs(l), W[l].t(), out=a[l])
                mu = self.act(a)
                r = mu - x
            logits = torch.addmm(b[-1], inputs(hidden), W[-1].t())
            log_p = F.log_softmax(logits, dim=1)
            ce = F.nll_loss(log_p, labels, reduction="sum")
            total = ce if r is None else ce + 0.5 * torch.dot(r.view(-1), r.view(-1))
            value = float(total) / B
            if value != value or value in (float("inf"), float("-inf")):
                raise Diverged(f"energy is {value} at inference step {t}")
            if t == 0:
                stats.loss, stats.energy_first = float(ce) / B, value
                algorithm.start_batch(optim_x)
            stats.energy_last = value
            algorithm.observe_energy(t, value, optim_x)

            g_out = log_p.exp_().sub_(onehot)  # B dF/dlogits
            if r is not None:
                G = self.act_grad(r, a, mu)  # B dF/da, every hidden layer at once
            move_x = algorithm.updates_x(t)
            if move_x and hidden:  # B dF/dx from the current weights, before they move
                for l in range(hidden - 1):
                    if G is None:
                        dx[l].zero_()
                    else:
                        torch.addmm(r[l], G[l + 1], W[l + 1], beta=-1, out=dx[l])
                if r is None:
                    torch.mm(g_out, W[-1], out=dx[-1])
                else:
                    torch.addmm(r[-1], g_out, W[-1], beta=-1, out=dx[-1])
            if learn:
                for i in range(n_groups):
                    l = depth - 1 - i
                    if i not in learn:
                        W[l].grad = b[l].grad = None
                        continue
                    g_l = g_out if l == hidden else G[l] if G is not None else None
                    W[l].grad = self._grad(W[l], g_l, inputs(l), B)
                    b[l].grad = self._grad_bias(b[l], g_l, B)
                optimizer = _unwrap(optim_w)
                if not _fused_adam_step(optimizer, [optimizer.param_groups[i] for i in learn]):
                    optimizer.step()
            if move_x and hidden:
                x.sub_(dx, alpha=optim_x.param_groups[0]["lr"])
            fresh = False
        for p in W + b:
            p.grad = None
        return stats

    @staticmethod
    def _grad(weight: torch.Tensor, g: torch.Tensor | None, inputs: torch.Tensor, B: int) -> torch.Tensor:
        out = weight.grad if weight.grad is not None else torch.empty_like(weight)
        if g is None:
            return out.zero_()
        return torch.addmm(out, g.t(), inputs, beta=0, alpha=1.0 / B, out=out)

    @staticmethod
    def _grad_bias(bias: torch.Tensor, g: torch.Tensor | None, B: int) -> torch.Tensor:
        out = bias.grad if bias.grad is not None else torch.empty_like(bias)
        if g is None:
            return out.zero_()
        return torch.sum(g, 0, out=out).div_(B)
