"""The one training loop (loop.py), the one mini-batch step (step.py) and the one job runner (job.py), used by every
algorithm and task."""

from .groups import layer_groups, optimizer_groups, weight_groups
from .loop import Fit, FitState, fit
from .step import Diverged, StepStats, train_batch

__all__ = [
    "Fit",
    "FitState",
    "fit",
    "Diverged",
    "StepStats",
    "train_batch",
    "weight_groups",
    "layer_groups",
    "optimizer_groups",
]
