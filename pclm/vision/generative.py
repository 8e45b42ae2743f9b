"""A generative PC network (Rao & Ballard; the iPC paper's Fig. 2 left): a chain of value nodes from a latent at the
top to the image at the bottom, predictions flowing downwards.

    x_0 = latent (free), prior N(0, I)        E_0 = 1/2 ||x_0 - 0||^2
    mu_l = act(W_l x_{l-1} + b_l)             E_l = 1/2 ||x_l - mu_l||^2      l = 1 .. L-1 (hidden, free)
    mu_L = W_L x_{L-1} + b_L                  E_L = 1/2 ||image - mu_L||^2    (the image, clamped)
There is no input to feed forward from, so the latent is initialised explicitly: the energy graph sets it to its
prediction, the prior mean 0, and the hidden nodes to the predictions from it (a top-down "feedforward" pass).
Node names: "latent", "layers.{l}". With `FeedForward` the model generates from the prior mean and `loss` is the
image energy of that prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..pc import FeedForward
from .chain import LinearChain

__all__ = ["GenerativeMLP", "GenerativeOutput"]

_FEEDFORWARD = FeedForward()


@dataclass
class GenerativeOutput:
    prediction: torch.Tensor  # (B, D) predicted image, flattened
    loss: torch.Tensor  # image energy 1/2 ||image - mu||^2, mean over the batch


class GenerativeMLP(LinearChain):
    """Fully connected generative net: `latent` units at the top, `depth` weight layers (`depth - 1` hidden layers of
    `width` units, activation `act`), `out_features` image values at the bottom (3072 for 3x32x32). `pc_layers()`
    lists each weight layer's parameters nearest the clamped node (the image) first."""

    def __init__(
        self, latent: int = 256, width: int = 256, depth: int = 3, out_features: int = 3072, act: str = "tanh"
    ) -> None:
        super().__init__(latent, width, depth, out_features, act)
        self.latent = latent

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> GenerativeOutput:
        nodes = nodes or _FEEDFORWARD
        image = pixel_values.flatten(1)  # (B, D)
        h = nodes("latent", image.new_zeros(image.shape[0], self.latent))  # (B, latent); prior mean 0
        mu = self.chain(h, nodes)  # (B, D)
        return GenerativeOutput(prediction=mu, loss=nodes.clamp("image", image, mu))
