"""The vision suite: classifiers and generative nets on the same PC core, algorithms and training loop."""

from .mlp import MLP, VisionOutput

__all__ = ["MLP", "VisionOutput"]
