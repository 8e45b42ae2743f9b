"""Energies of value nodes: small pure functions, each summed over everything it is given.

Every function returns a scalar: the sum of the node's energy over all positions that the optional mask keeps.
Normalising by batch size is the energy graph's job (see `EnergyGraph.energy`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian", "softmax_kl", "cross_entropy", "IGNORE_INDEX"]

IGNORE_INDEX = -100


def _masked_sum(per_position: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_position.sum()
    return (per_position * mask.to(per_position.dtype)).sum()


def gaussian(x: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """1/2 ||x - mu||^2 over the last dim, summed over positions kept by `mask`.

    x, mu: (..., C); mask: broadcastable to (...), 1 = keep, 0 = padding.
    """
    e = x - mu
    return _masked_sum(0.5 * e.pow(2).sum(-1), mask)


class _SoftmaxKL(torch.autograd.Function):
    """Row-wise KL(softmax(x) || softmax(mu)) with its closed-form gradients:
    dKL/dx = p * (log p - log q - KL),  dKL/dmu = q - p.
    Both are exactly zero at x = mu. Autograd through log_softmax leaves float noise of ~1e-8 there, and AdamW's
    normalisation would turn that noise into full-size updates of weights that should not have moved yet."""

    @staticmethod
    def forward(x: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_p, log_q = F.log_softmax(x, dim=-1), F.log_softmax(mu, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        return kl, log_p, log_q  # the log-probabilities are outputs only so that backward can reuse them

    @staticmethod
    def setup_context(
        ctx, inputs, output
    ) -> None:  # separate from forward: torch.func (train.backend=compiled) needs it
        kl, log_p, log_q = output
        ctx.mark_non_differentiable(log_p, log_q)
        ctx.save_for_backward(log_p, log_q, kl)

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_log_p=None, _grad_log_q=None):
        log_p, log_q, kl = ctx.saved_tensors
        p, g = log_p.exp(), grad.unsqueeze(-1)
        return g * p * (log_p - log_q - kl.unsqueeze(-1)), g * (log_q.exp() - p)


def softmax_kl(x: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(softmax(x) || softmax(mu)) over the last dim: the "vec." energy of an internal softmax node.

    x, mu: (..., K) logits (attention scores); mask: broadcastable to (...). Entries masked out of the softmax
    must carry a large finite negative value (not -inf) in both x and mu, so they contribute exactly zero.
    """
    return _masked_sum(_SoftmaxKL.apply(x, mu)[0], mask)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """KL(onehot(targets) || softmax(logits)) = cross-entropy, summed over targets != ignore_index.

    logits: (N, V); targets: (N,). The energy of an output node clamped to the labels.
    """
    return F.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction="sum")
