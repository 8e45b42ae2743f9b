"""Convolutional classifiers as energy graphs: the same chain of value nodes as `MLP`, one node per weight layer.

    x_0 = image (clamped)
    mu_l = pool(act(conv_l(x_{l-1})))            conv blocks, (B, C_l, H_l, W_l); pool only where the block has one
    mu_l = act(W_l flatten(x_{l-1}) + b_l)       hidden fully connected layers, (B, width)
    logits = W_L x_{L-1} + b_L, clamped to the label
A conv block (conv -> activation -> optional max-pool) is ONE value node; flattening is a reshape between a node and
the next layer, not a node. Node names are "layers.{l}" (l = 1 .. L-1, counted from the input over conv and fully
connected layers alike), as in `MLP`. `pc_layers()` lists each weight layer's parameters nearest the output first,
so Z-IL runs on these chains too. No dropout or batch norm: both would make the prediction of a node depend on more
than the node below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..pc import FeedForward
from .chain import activation, pc_layers_of
from .mlp import VisionOutput

__all__ = ["ConvSpec", "ConvNet", "CNN", "AlexNet", "WidthCNN"]

_FEEDFORWARD = FeedForward()


@dataclass(frozen=True)
class ConvSpec:
    """One conv block: Conv2d(out_channels, kernel, stride, padding) -> activation -> MaxPool2d(pool) if pool."""

    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    pool: int = 2  # 0 = no pooling


class ConvNet(nn.Module):
    """Conv blocks `convs`, then hidden fully connected layers of widths `hidden`, then `classes` logits.

    Args:
        convs: the conv blocks, input side first.
        hidden: widths of the hidden fully connected layers (each followed by the activation and a value node).
        classes: number of output classes.
        in_channels, image_size: input images are (B, in_channels, image_size, image_size).
        act: "relu", "tanh" or "gelu", used after every conv and hidden fully connected layer.
    """

    def __init__(
        self,
        convs: Sequence[ConvSpec],
        hidden: Sequence[int],
        classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.act = activation(act)
        self.specs = tuple(convs)
        channels = [in_channels] + [s.out_channels for s in self.specs]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, s.out_channels, s.kernel, s.stride, s.padding) for a, s in zip(channels[:-1], self.specs)
        )
        size = image_size
        for s in self.specs:
            size = (size + 2 * s.padding - s.kernel) // s.stride + 1
            size = size // s.pool if s.pool else size
            if size < 1:
                raise ValueError(f"image_size {image_size} is too small for these conv blocks")
        self.flat_features = channels[-1] * size * size
        sizes = [self.flat_features] + list(hidden) + [classes]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    @property
    def n_layers(self) -> int:
        """Weight layers L (conv and fully connected); Z-IL runs L steps."""
        return len(self.convs) + len(self.fcs)

    def pc_layers(self) -> list[list[nn.Parameter]]:
        return pc_layers_of([*self.convs, *self.fcs])

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> VisionOutput:
        nodes = nodes or _FEEDFORWARD
        h = pixel_values  # (B, C_0, H, W)
        l = 0
        for conv, spec in zip(self.convs, self.specs):
            l += 1
            mu = self.act(conv(h))  # (B, C_l, H_l, W_l)
            if spec.pool:
                mu = F.max_pool2d(mu, spec.pool)
            h = nodes(f"layers.{l}", mu)
        h = h.flatten(1)  # (B, flat_features)
        for fc in self.fcs[:-1]:
            l += 1
            h = nodes(f"layers.{l}", self.act(fc(h)))  # (B, width)
        logits = self.fcs[-1](h)  # (B, classes)
        loss = None if labels is None else nodes.clamp_output(logits, labels)
        return VisionOutput(logits=logits, loss=loss)


class CNN(ConvNet):
    """Table 1's CNN: three 3x3 conv blocks (64, 128, 64 channels, padding 1, activation, 2x2 max-pool after each),
    then two fully connected layers (`hidden` units, then `classes`). 3x32x32 -> 64x4x4; 1x28x28 -> 64x3x3.
    `kwargs`, here and in the other named nets: ConvNet's `classes`, `in_channels`, `image_size`, `act`."""

    def __init__(self, hidden: int = 128, channels: Sequence[int] = (64, 128, 64), **kwargs: Any) -> None:
        super().__init__([ConvSpec(c) for c in channels], [hidden], **kwargs)


class AlexNet(ConvNet):
    """The common CIFAR AlexNet (32x32 inputs), without dropout:
    conv 3x3/2 64 -> pool 2, conv 3x3 192 -> pool 2, conv 3x3 384, conv 3x3 256, conv 3x3 256 -> pool 2
    (3x32x32 -> 256x2x2), then fully connected `fc_width`, `fc_width`, `classes`. The original uses
    `fc_width=4096`; the default 256 keeps it CPU-sized. `channels` rescales the five conv layers."""

    def __init__(self, fc_width: int = 256, channels: Sequence[int] = (64, 192, 384, 256, 256), **kwargs: Any) -> None:
        if len(channels) != 5:
            raise ValueError("AlexNet has 5 conv layers")
        c1, c2, c3, c4, c5 = channels
        convs = [ConvSpec(c1, stride=2), ConvSpec(c2), ConvSpec(c3, pool=0), ConvSpec(c4, pool=0), ConvSpec(c5)]
        super().__init__(convs, [fc_width, fc_width], **kwargs)


class WidthCNN(ConvNet):
    """Table 2's CNN at width factor C: three 3x3 conv blocks (32C, 16C, 8C channels, padding 1, activation, 2x2
    max-pool after each), then fully connected 128C, then `classes`."""

    def __init__(self, C: int = 1, **kwargs: Any) -> None:
        if C < 1:
            raise ValueError("C must be >= 1")
        super().__init__([ConvSpec(32 * C), ConvSpec(16 * C), ConvSpec(8 * C)], [128 * C], **kwargs)
