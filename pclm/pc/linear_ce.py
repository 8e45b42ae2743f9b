"""The output node's energy straight from the last hidden states: a linear layer to the vocabulary followed by the
cross-entropy against the clamped targets, computed in row chunks so that the full (N, V) logits never exist.

The backward is written by hand and computed during the forward pass, chunk by chunk, while each chunk's logits
are in cache: the softmax minus the one-hot target is the gradient of the logits, so each chunk costs three
matmuls (logits, dF/dh, dF/dW) and one (n, V) buffer. Autograd then only scales the stored gradients by the
incoming gradient. Only the rows with a target enter the matmuls: rows whose target is ignored (-100: padding,
the conditional LM's last position) are left out first, and their hidden-state gradient is exactly zero.
The result equals `cross_entropy(h @ W.T + b, targets)` to float tolerance.
"""

from __future__ import annotations

import torch

from .energies import IGNORE_INDEX

__all__ = ["linear_cross_entropy", "DEFAULT_CHUNK_ROWS"]

DEFAULT_CHUNK_ROWS = 512  # (512, 8001) fp32 logits = 16 MiB: large enough for efficient matmuls, small for cache


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    """The matmul dtype: the autocast dtype when autocast is on for h's device, else h's own dtype."""
    kind = h.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return h.dtype


def _chunked(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_rows: int,
    grad_h: torch.Tensor | None,
    grad_w: torch.Tensor | None,
    grad_b: torch.Tensor | None,
) -> torch.Tensor:
    """The summed cross-entropy of the rows of h (n, C) in the matmul dtype of w, chunk by chunk; fills the given
    float32 gradient buffers. Every row has a target (the ignored ones were left out before)."""
    dtype = w.dtype
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for start in range(0, h.shape[0], chunk_rows):
        hc = h[start : start + chunk_rows].to(dtype)  # (n, C)
        tc = targets[start : start + chunk_rows]  # (n,)
        logits = hc @ w.t() if b is None else torch.addmm(b, hc, w.t())  # (n, V), in the matmul dtype
        safe = tc[:, None]  # (n, 1)
        logp = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # one fused, row-local kernel
        picked = logp.gather(1, safe)[:, 0]
        total -= picked.sum()
        if grad_h is None and grad_w is None:
            continue
        # dCE/dlogits = softmax - onehot; built in place in the same buffer
        grad = logp.exp_()
        grad.scatter_add_(1, safe, torch.full_like(safe, -1, dtype=grad.dtype))
        g = grad.to(dtype)
        if grad_h is not None:
            if dtype == torch.float32:
                torch.mm(g, w, out=grad_h[start : start + chunk_rows])
            else:
                grad_h[start : start + chunk_rows] = g @ w
        if grad_w is not None:
            if dtype == torch.float32:
                grad_w.addmm_(g.t(), hc)
            else:
                grad_w += g.t() @ hc
        if grad_b is not None:
            grad_b += grad.sum(0)
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(h, weight, bias, targets, chunk_rows: int, need_h: bool, need_w: bool):
        # h: (N, C); weight: (V, C); bias: (V,) or None; targets: (N,)
        dtype = _compute_dtype(h)
        with torch.autocast(h.device.type, enabled=False):
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            f32 = dict(dtype=torch.float32, device=h.device)
            rows = None  # (K,) indices of the rows that have a target, when some have none
            hk, tk = h, targets
            keep = targets != IGNORE_INDEX
            if not bool(keep.all()):
                rows = keep.nonzero()[:, 0]
                hk, tk = h.index_select(0, rows), targets.index_select(0, rows)
            grad_hk = torch.empty(hk.shape, **f32) if need_h else None
            grad_w = torch.zeros(weight.shape, **f32) if need_w else None
            grad_b = torch.zeros(bias.shape, **f32) if need_w and bias is not None else None
            total = _chunked(hk, w, b, tk, chunk_rows, grad_hk, grad_w, grad_b)
            grad_h = grad_hk
            if rows is not None and grad_hk is not None:  # a row without a target gets exactly zero
                grad_h = torch.zeros(h.shape, **f32).index_copy_(0, rows, grad_hk)
        return total, grad_h, grad_w, grad_b  # the gradients are outputs only so that backward can use them

    @staticmethod
    def setup_context(
        ctx, inputs, output
    ) -> None:  # separate from forward: torch.func (train.backend=compiled) needs it
        h, weight, bias = inputs[:3]
        _, grad_h, grad_w, grad_b = output
        ctx.mark_non_differentiable(*(g for g in (grad_h, grad_w, grad_b) if g is not None))
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.dtypes = (h.dtype, weight.dtype, None if bias is None else bias.dtype)

    @staticmethod
    def backward(ctx, grad_out, *_):
        saved = ctx.saved_tensors
        out = []
        for i, (g, dtype) in enumerate(zip(saved, ctx.dtypes)):
            if not ctx.needs_input_grad[i]:
                out.append(None)
            elif g is None:
                # asked for a gradient the forward pass did not compute: only possible for the weights of an
                # inference-only evaluation, whose backward is restricted to the value nodes and never reads it
                out.append(None)
            else:
                out.append((g * grad_out).to(dtype))
        return (*out, None, None, None, None)


def linear_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    weight_grads: bool = True,
) -> torch.Tensor:
    """Cross-entropy of the logits `h @ weight.T + bias` against `targets`, summed over targets != -100.

    h: (N, C) hidden states; weight: (V, C); bias: (V,) or None; targets: (N,). Returns a float32 scalar.
    Gradients for h, weight and bias are computed in the forward pass; `weight_grads=False` skips those of
    weight and bias (an inference-only evaluation, whose backward must then be restricted to other inputs:
    the weights get no gradient from it).
    Only the rows with a target enter the matmuls (their hidden-state gradient is scattered back, the other rows
    get exactly zero).
    Under autocast the matmuls run in the autocast dtype; the softmax and the sums stay float32.
    """
    grads = torch.is_grad_enabled()
    need_h = grads and h.requires_grad
    need_w = grads and weight_grads and (weight.requires_grad or (bias is not None and bias.requires_grad))
    return _LinearCrossEntropy.apply(h, weight, bias, targets, chunk_rows, need_h, need_w)[0]
