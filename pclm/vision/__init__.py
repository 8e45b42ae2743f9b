"""The vision suite: classifiers and generative nets on the same PC core, algorithms and training loop."""

from .augment import random_crop_flip
from .closed_form import ClosedFormMLP
from .cnn import CNN, AlexNet, ConvNet, ConvSpec, WidthCNN
from .mlp import MLP, VisionOutput
from .parallel_mlp import StackedMLP
from .registry import VISION_MODELS, build_vision_model

__all__ = [
    "MLP",
    "ClosedFormMLP",
    "StackedMLP",
    "VisionOutput",
    "ConvSpec",
    "ConvNet",
    "CNN",
    "AlexNet",
    "WidthCNN",
    "VISION_MODELS",
    "build_vision_model",
    "random_crop_flip",
]
