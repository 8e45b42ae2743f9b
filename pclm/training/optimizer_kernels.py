"""Optimiser steps on chosen parameter groups through the kernels torch's own optimisers call, without the Python
around them: fused Adam / AdamW and plain SGD. `BatchRun` uses them for gradient backends that ask for it (the
closed-form MLP), where that Python is a visible share of a step."""

from __future__ import annotations

import torch

__all__ = ["optimizer_kernel"]


def _plain(groups: list[dict], off: tuple[str, ...]) -> bool:
    """Whether every parameter group has a float lr, `maximize` unset and each setting in `off` unset (0 or False):
    the only case the kernels below reproduce."""
    return not any(isinstance(g["lr"], torch.Tensor) or g["maximize"] or any(g[k] for k in off) for g in groups)


def _sgd_kernel(optimizer: torch.optim.Optimizer):
    """`step(group_indices)` for a plain torch SGD (no momentum, weight decay, dampening or Nesterov): p -= lr * grad,
    one `torch._foreach_add_` per group, the same arithmetic as SGD's own foreach step, without its Python. None for
    any other setting."""
    groups = optimizer.param_groups
    if type(optimizer) is not torch.optim.SGD or not _plain(
        groups, ("momentum", "weight_decay", "dampening", "nesterov")
    ):
        return None

    def step(indices: list[int]) -> None:
        for i in indices:
            params = groups[i]["params"]
            torch._foreach_add_(params, [p.grad for p in params], alpha=-groups[i]["lr"])

    return step


def optimizer_kernel(optimizer: torch.optim.Optimizer):
    """A function `step(group_indices)` that takes `optimizer`'s step on those parameter groups by calling its
    kernel directly (`_adam_kernel`: fused Adam / AdamW; `_sgd_kernel`: plain SGD), or None for any other optimiser
    or setting: then use `optimizer.step()`."""
    return _adam_kernel(optimizer) or _sgd_kernel(optimizer)


# the fused Adam kernels' remaining flags: `_adam_kernel` runs only where amsgrad and maximize are off, unscaled
_OFF = {"amsgrad": False, "maximize": False, "grad_scale": None, "found_inf": None}


def _adam_kernel(optimizer: torch.optim.Optimizer):
    """A function `step(group_indices)` that takes the step a fused torch Adam / AdamW would take on those groups
    (every parameter in them must have a gradient), as one call of the kernel its own `step()` calls
    (`torch._fused_adam(w)_`) for all groups whose settings agree, without the Python around it. None for
    any other optimiser or setting, and before the optimiser's state exists (its first step creates it): then the
    caller steps it the ordinary way. The settings are read at every step, so schedules apply as usual."""
    if not isinstance(optimizer, torch.optim.Adam):  # AdamW is an Adam with decoupled weight decay
        return None
    groups = optimizer.param_groups
    if not all(g.get("fused") for g in groups) or not _plain(groups, ("amsgrad", "capturable", "differentiable")):
        return None
    if any("step" not in optimizer.state.get(p, {}) for g in groups for p in g["params"]):
        return None
    lists = []  # per group: params, first moments, second moments, step counts
    for g in groups:
        state = [optimizer.state[p] for p in g["params"]]
        lists.append(
            (g["params"], [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], [s["step"] for s in state])
        )

    def step(indices: list[int]) -> None:
        calls: dict[tuple, tuple[list, list, list, list]] = {}
        for i in indices:
            g = groups[i]
            key = (g["lr"], *g["betas"], g["weight_decay"], g["eps"], g["decoupled_weight_decay"])
            merged = calls.setdefault(key, ([], [], [], []))
            for into, part in zip(merged, lists[i]):
                into.extend(part)
        for (lr, beta1, beta2, weight_decay, eps, decoupled), (params, exp_avg, exp_avg_sq, steps) in calls.items():
            torch._foreach_add_(steps, 1)
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            settings = {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay, "eps": eps}
            grads = [p.grad for p in params]
            kernel(params, grads, exp_avg, exp_avg_sq, [], steps, **settings, **_OFF)

    return step
