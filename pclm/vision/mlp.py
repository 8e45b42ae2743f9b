"""The vision MLP as an energy graph: a chain of value nodes, one after each hidden layer.

    x_0 = image (clamped)   mu_l = act(W_l x_{l-1} + b_l)   logits = W_L x_{L-1} + b_L, clamped to the label
Node names are "layers.{l}" (l = 1 .. L-1). `pc_layers()` lists each weight layer's parameters, nearest the
output first, which is the order Z-IL updates them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..pc import FeedForward
from .chain import LinearChain

__all__ = ["MLP", "VisionOutput"]

_FEEDFORWARD = FeedForward()


@dataclass
class VisionOutput:
    logits: torch.Tensor  # (B, classes)
    loss: torch.Tensor | None = None  # mean cross-entropy when labels are given


class MLP(LinearChain):
    """Fully connected classifier: `depth` weight layers, `width` hidden units, activation `act`."""

    def __init__(
        self, in_features: int = 784, width: int = 64, depth: int = 3, classes: int = 10, act: str = "tanh"
    ) -> None:
        super().__init__(in_features, width, depth, classes, act)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> VisionOutput:
        nodes = nodes or _FEEDFORWARD
        logits = self.chain(pixel_values.flatten(1), nodes)  # (B, D) -> (B, classes)
        loss = None if labels is None else nodes.clamp_output(logits, labels)
        return VisionOutput(logits=logits, loss=loss)
