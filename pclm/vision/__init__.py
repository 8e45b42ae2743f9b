"""The vision suite: classifiers and generative nets on the same PC core, algorithms and training loop."""

from .mlp import MLP, VisionOutput
from .parallel_mlp import StackedMLP

__all__ = ["MLP", "StackedMLP", "VisionOutput"]
