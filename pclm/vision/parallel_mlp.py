"""Layer-parallel execution of the vision MLP: every hidden layer's matmul issued at once, as one batched matmul.

iPC's inference and learning steps only ever read value nodes and errors that already exist, so the matmuls of
all layers are independent (SPEC.md section 3: 2 SMMs per weight update, whatever the depth). PyTorch runs a Python
loop over layers one after another; `StackedMLP` removes the loop for chains of equal width:

    x_0 = image (clamped)                                   input layer:   mu_1 = act(W_1 x_0 + b_1)       nn.Linear
    x = [x_1; ...; x_{D-1}]   one value node, (D-1, B, W)   hidden layers: mu_{l+1} = act(W_{l+1} x_l + b_{l+1}),
                                                            l = 1 .. D-2, ONE torch.baddbmm over the (D-2, W, W) stack
    logits = W_D x_{D-1} + b_D, clamped to the label        output layer:                                   nn.Linear

The energy graph holds the stacked x as one Gaussian node ("hidden"), so `train_batch` runs it unchanged with any
value-node schedule, and autograd's backward of that single node energy produces every layer's error propagation
(x-gradients) and weight gradients as batched matmuls too. The model is the same function of the same parameters as
`pclm.vision.MLP` (`from_mlp` / `to_mlp` convert), and the energy is the sum of the same per-layer Gaussian
energies, so iPC, PC and BP give the same updates as the sequential MLP.

Only predictions from existing value nodes are batched. The feedforward pass (evaluation, BP, and the first pass of
every batch, which initialises the value nodes) is sequential by nature and loops over the stack.
There is no `pc_layers()`: the hidden layers are one parameter, so per-layer weight groups (Z-IL) are not available.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..pc import FeedForward
from .mlp import MLP, VisionOutput

__all__ = ["StackedMLP"]

_FEEDFORWARD = FeedForward()
_ACTS = {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}  # the same functions MLP picks from
NODE = "hidden"


class StackedMLP(nn.Module):
    """The MLP of `pclm.vision.MLP` (`depth` weight layers, `width` hidden units) with its D - 2 hidden-to-hidden
    layers stacked into one (D-2, W, W) weight and its D - 1 hidden value nodes into one (D-1, B, W) node."""

    def __init__(self, in_features: int = 784, width: int = 64, depth: int = 3, classes: int = 10,
                 act: str = "tanh") -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("StackedMLP needs depth >= 2 (at least one hidden value node)")
        self.act_name, self.act = act, _ACTS[act]
        self.inp = nn.Linear(in_features, width)
        self.weight = nn.Parameter(torch.empty(depth - 2, width, width))  # (D-2, W_out, W_in), like nn.Linear
        self.bias = nn.Parameter(torch.empty(depth - 2, width))  # (D-2, W)
        self.out = nn.Linear(width, classes)
        with torch.no_grad():  # nn.Linear's default initialisation, layer by layer
            for w, b in zip(self.weight, self.bias):
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                nn.init.uniform_(b, -1 / math.sqrt(width), 1 / math.sqrt(width))

    @property
    def depth(self) -> int:
        return self.weight.shape[0] + 2

    # ------------------------------------------------------------------------------------------------- conversion
    @classmethod
    def from_mlp(cls, mlp: MLP) -> StackedMLP:
        """A StackedMLP holding copies of `mlp`'s parameters (all hidden layers must have the same width)."""
        layers = list(mlp.layers)
        act = next((name for name, fn in _ACTS.items() if fn is mlp.act), None)
        if len(layers) < 2 or act is None:
            raise ValueError("from_mlp needs an MLP with depth >= 2 and a tanh/relu/gelu activation")
        model = cls(layers[0].in_features, layers[0].out_features, len(layers), layers[-1].out_features, act)
        with torch.no_grad():
            model.inp.load_state_dict(layers[0].state_dict())
            model.out.load_state_dict(layers[-1].state_dict())
            for i, layer in enumerate(layers[1:-1]):
                model.weight[i].copy_(layer.weight)
                model.bias[i].copy_(layer.bias)
        return model.to(layers[0].weight.device, layers[0].weight.dtype)

    def to_mlp(self) -> MLP:
        """A sequential `MLP` holding copies of these parameters."""
        mlp = MLP(self.inp.in_features, self.inp.out_features, self.depth, self.out.out_features, self.act_name)
        with torch.no_grad():
            mlp.layers[0].load_state_dict(self.inp.state_dict())
            mlp.layers[-1].load_state_dict(self.out.state_dict())
            for i, layer in enumerate(mlp.layers[1:-1]):
                layer.weight.copy_(self.weight[i])
                layer.bias.copy_(self.bias[i])
        return mlp.to(self.weight.device, self.weight.dtype)

    # ---------------------------------------------------------------------------------------------------- forward
    def feedforward_hidden(self, x0: torch.Tensor) -> torch.Tensor:
        """The D - 1 hidden activations of a feedforward pass, layer after layer. x0: (B, D_in) -> (D-1, B, W)."""
        h = [self.act(self.inp(x0))]
        for w, b in zip(self.weight, self.bias):
            h.append(self.act(F.linear(h[-1], w, b)))
        return torch.stack(h)

    def predict_hidden(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """All hidden predictions from the value nodes at once. x0: (B, D_in), x: (D-1, B, W) -> mu: (D-1, B, W)."""
        first = self.act(self.inp(x0)).unsqueeze(0)  # (1, B, W)
        if self.weight.shape[0] == 0:
            return first
        # mu_{l+1} = act(x_l W_{l+1}^T + b_{l+1}) for every hidden-to-hidden layer in one batched matmul
        rest = self.act(torch.baddbmm(self.bias.unsqueeze(1), x[:-1], self.weight.transpose(1, 2)))  # (D-2, B, W)
        return torch.cat([first, rest])

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> VisionOutput:
        nodes = nodes or _FEEDFORWARD
        x0 = pixel_values.flatten(1)  # (B, D_in)
        x = getattr(nodes, "x", {}).get(NODE)  # the graph's stacked value node, once it exists
        mu = self.feedforward_hidden(x0) if x is None else self.predict_hidden(x0, x)  # (D-1, B, W)
        h = nodes(NODE, mu)  # x (a value node) or mu (no value node)
        logits = self.out(h[-1])  # (B, classes)
        loss = None if labels is None else nodes.clamp_output(logits, labels)
        return VisionOutput(logits=logits, loss=loss)
