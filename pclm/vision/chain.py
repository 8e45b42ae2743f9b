"""What the fully connected vision nets share: activations by name, and a chain of Linear layers with a value node
after each hidden one.

    mu_l = act(W_l x_{l-1} + b_l)   l = 1 .. L-1 (node "layers.{l}")   the last layer W_L x_{L-1} + b_L is linear
`pc_layers()` lists each weight layer's parameters, nearest the output (the clamped end) first, which is the order
Z-IL updates them in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "activation", "LinearChain", "pc_layers_of"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": F.gelu,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called `name`; ValueError naming the choices otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (choose from {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def pc_layers_of(layers: Sequence[nn.Module]) -> list[list[nn.Parameter]]:
    """Each layer's parameters, `layers` given input side first, returned nearest the output first."""
    return [list(layer.parameters()) for layer in reversed(layers)]


class LinearChain(nn.Module):
    """`depth` Linear layers `first` -> `width` -> ... -> `width` -> `last` (`depth - 1` hidden layers of `width`),
    activation `act` after each hidden layer."""

    def __init__(self, first: int, width: int, depth: int, last: int, act: str) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        sizes = [first] + [width] * (depth - 1) + [last]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act_name, self.act = act, activation(act)

    def pc_layers(self) -> list[list[nn.Parameter]]:
        return pc_layers_of(self.layers)

    def chain(self, h: torch.Tensor, nodes) -> torch.Tensor:
        """(B, first) -> (B, last): every layer, each hidden one's output through the node "layers.{l}"."""
        for l, layer in enumerate(self.layers[:-1], start=1):
            h = nodes(f"layers.{l}", self.act(layer(h)))  # (B, width)
        return self.layers[-1](h)
