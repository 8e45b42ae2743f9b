"""The vision MLP as an energy graph: a chain of value nodes, one after each hidden layer.

    x_0 = image (clamped)   mu_l = act(W_l x_{l-1} + b_l)   logits = W_L x_{L-1} + b_L, clamped to the label
Node names are "layers.{l}" (l = 1 .. L-1). `pc_layers()` lists each weight layer's parameters, nearest the
output first, which is the order Z-IL updates them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..pc import FeedForward

__all__ = ["MLP", "VisionOutput"]

_FEEDFORWARD = FeedForward()


@dataclass
class VisionOutput:
    logits: torch.Tensor  # (B, classes)
    loss: torch.Tensor | None = None  # mean cross-entropy when labels are given


class MLP(nn.Module):
    """Fully connected classifier: `depth` weight layers, `width` hidden units, activation `act`."""

    def __init__(
        self, in_features: int = 784, width: int = 64, depth: int = 3, classes: int = 10, act: str = "tanh"
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        sizes = [in_features] + [width] * (depth - 1) + [classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act_name = act
        acts = {"tanh": torch.tanh, "relu": torch.relu, "gelu": nn.functional.gelu}
        if act not in acts:
            raise ValueError(f"unknown activation '{act}' (choose from {', '.join(acts)})")
        self.act = acts[act]

    def pc_layers(self) -> list[list[nn.Parameter]]:
        return [list(layer.parameters()) for layer in reversed(self.layers)]

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> VisionOutput:
        nodes = nodes or _FEEDFORWARD
        h = pixel_values.flatten(1)  # (B, D)
        for l, layer in enumerate(self.layers[:-1], start=1):
            h = nodes(f"layers.{l}", self.act(layer(h)))
        logits = self.layers[-1](h)
        loss = None if labels is None else nodes.clamp_output(logits, labels)
        return VisionOutput(logits=logits, loss=loss)
