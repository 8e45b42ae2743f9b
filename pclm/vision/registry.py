"""Named vision classifiers: `build_vision_model("cnn", in_channels=1, image_size=28)`."""

from __future__ import annotations

import torch.nn as nn

from ..errors import UsageError
from .cnn import CNN, AlexNet, WidthCNN
from .mlp import MLP

__all__ = ["VISION_MODELS", "build_vision_model"]

VISION_MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "alexnet": AlexNet, "width_cnn": WidthCNN}


def build_vision_model(name: str, **kwargs) -> nn.Module:
    """The classifier called `name`, built with the constructor arguments `kwargs`."""
    if name not in VISION_MODELS:
        raise UsageError(f"unknown vision model '{name}' (choose from {', '.join(VISION_MODELS)})")
    return VISION_MODELS[name](**kwargs)
