"""The one training loop (loop.py), the one mini-batch step (step.py) and the one job runner (job.py), used by every
algorithm and task."""

from .loop import Fit, FitState, fit
from .step import Diverged, StepStats, train_batch, weight_groups

__all__ = ["Fit", "FitState", "fit", "Diverged", "StepStats", "train_batch", "weight_groups"]
