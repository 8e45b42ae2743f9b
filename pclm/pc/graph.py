"""Value nodes and the energy graph.

A model calls `nodes(name, mu, mask)` at every place where a value node may sit, and
`nodes.clamp_output(logits, targets)` at its output. A model whose output is a linear readout may instead call
`nodes.clamp_readout(h, weight, bias, targets)` when `nodes.fused_readout` is true: the same cross-entropy energy,
computed in row chunks without the full logits (`linear_cross_entropy`). Two implementations share that interface:

* `FeedForward`: no value nodes. `nodes(name, mu)` returns `mu`; the output loss is the mean cross-entropy.
  Evaluation, pipelines and `generate()` use it.
* `EnergyGraph`: the nodes chosen by `select` become value nodes `x`: leaf tensors, one per batch, never
  parameters. The first forward pass initialises each free node to its prediction (`x = mu`, a feedforward
  pass); every pass records each node's energy E(x, mu) and returns `x` downstream, so `mu` of the next node
  depends on this node's `x` only. One backward of `energy()` then gives dF/dx for every value node and
  dF/dtheta for every weight: all local gradients at once.

Energy scale (pcx's convention): F = (sum of all node energies over the batch) / batch_size. Weight gradients are
therefore batch means; the training step multiplies dF/dx by batch_size (`Algorithm.x_grads`, "sample") so that a
sample's x-gradient is the gradient of its own energy and does not shrink as the batch grows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .energies import IGNORE_INDEX, cross_entropy, gaussian
from .linear_ce import linear_cross_entropy

__all__ = ["FeedForward", "EnergyGraph", "EnergyFn"]

EnergyFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class FeedForward:
    """The identity graph: no value nodes. Used for BP-free evaluation and inference.

    `fused_readout` is False: callers of a feedforward pass (evaluation, pipelines, `generate`) get full logits.
    """

    fused_readout = False

    def __call__(self, name: str, mu: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return mu

    def clamp_output(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the targets that are not ignored. logits: (N, V); targets: (N,)."""
        count = (targets != IGNORE_INDEX).sum().clamp(min=1)
        return cross_entropy(logits, targets) / count

    def clamp_readout(
        self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        """`clamp_output` of the logits `h @ weight.T + bias` without forming them. h: (N, C); targets: (N,)."""
        count = (targets != IGNORE_INDEX).sum().clamp(min=1)
        return linear_cross_entropy(h, weight, bias, targets) / count

    def clamp(self, name: str, target: torch.Tensor, mu: torch.Tensor, energy_fn: EnergyFn = gaussian) -> torch.Tensor:
        """Clamp node `name` to data `target` (e.g. the image of a generative net); its energy E(target, mu) summed
        over the batch / batch size. target, mu: (B, ...)."""
        return energy_fn(target, mu, None) / target.shape[0]


class EnergyGraph(FeedForward):
    """Value nodes for one mini-batch plus the energies recorded by the latest forward pass.

    Args:
        select: maps a node name (e.g. "blocks.0.scores") to its energy function, or None when that position is
            not a value node. `select=lambda name: None` gives a graph with only the output node, whose energy
            is the BP loss (as a sum over targets / batch_size).
        batch_size: number of samples in the batch (the energy's normaliser).

    `fused_readout` is True: a training graph never needs the full logits. `learning` says whether the next
    evaluation takes weight gradients; the training step sets it, and the fused readout then skips dF/dW.
    `prune_settled`: a node whose value equals its prediction exactly (e = 0: every node right after feedforward
    initialisation, and any node the error has not reached yet) records a constant zero energy. Its energy and
    every gradient of it are exactly zero, so F and all gradients are unchanged, but the backward pass skips the
    layers that only feed settled nodes (at t = 0 everything below the output). Weights that then get no gradient
    at all have `.grad` None; the training step fills zeros where an optimiser steps them. Off by default (compiled
    graphs cannot branch on values); the eager training step turns it on in one process.
    """

    fused_readout = True

    def __init__(self, select: Callable[[str], EnergyFn | None], batch_size: int) -> None:
        self.select = select
        self.batch_size = batch_size
        self.x: dict[str, torch.Tensor] = {}
        self.node_energies: dict[str, torch.Tensor] = {}
        self.learning = True
        self.prune_settled = False

    def __call__(self, name: str, mu: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        energy_fn = self.select(name)
        if energy_fn is None:
            return mu
        x = self.x.get(name)
        settled = x is None
        if x is None:  # feedforward initialisation: x = mu, so this node's error starts at zero
            # at least float32: under bf16 autocast mu is bf16, but the value nodes and their SGD stay float32
            dtype = torch.promote_types(mu.dtype, torch.float32)
            x = self.x[name] = mu.detach().to(dtype, copy=True).requires_grad_(True)
        elif self.prune_settled:
            settled = torch.equal(x.detach(), mu.detach().to(x.dtype))
        if self.prune_settled and settled:
            self.node_energies[name] = torch.zeros((), dtype=torch.float32, device=x.device)
        else:
            self.node_energies[name] = energy_fn(x, mu, mask)
        return x

    def clamp_output(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Clamp the output node to `targets` with the cross-entropy energy; returns the mean loss for logging."""
        total = cross_entropy(logits, targets)
        self.node_energies["output"] = total
        return total.detach() / (targets != IGNORE_INDEX).sum().clamp(min=1)

    def clamp_readout(
        self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        """`clamp_output` of the logits `h @ weight.T + bias`, computed in row chunks (`linear_cross_entropy`)."""
        total = linear_cross_entropy(h, weight, bias, targets, weight_grads=self.learning)
        self.node_energies["output"] = total
        return total.detach() / (targets != IGNORE_INDEX).sum().clamp(min=1)

    def clamp(self, name: str, target: torch.Tensor, mu: torch.Tensor, energy_fn: EnergyFn = gaussian) -> torch.Tensor:
        """Clamp node `name` to data `target` with energy E(target, mu); returns its mean energy for logging."""
        total = energy_fn(target, mu, None)
        self.node_energies[name] = total
        return total.detach() / self.batch_size

    def values(self) -> list[torch.Tensor]:
        """The value nodes x, in creation order (bottom to top)."""
        return list(self.x.values())

    def energy(self) -> torch.Tensor:
        """Total energy F of the latest pass: sum over nodes / batch_size (a scalar with a graph)."""
        return torch.stack([e.float() for e in self.node_energies.values()]).sum() / self.batch_size
