"""Calibration under distribution shift (Fig. 3 left): adaptive ECE and accuracy of a classifier on a clean test set
and on the same set under each corruption of `pclm.vision.corruptions` at intensities 1..5.

`load_adaece()` returns the equal-mass-bin ECE metric of `adaece/adaece.py`, loaded from its folder like
`pclm.evaluation.load_perplexity()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import evaluate
import torch

from ..vision.corruptions import CORRUPTIONS, corrupt

__all__ = ["ADAECE_DIR", "load_adaece", "adaece_of_logits", "calibration_under_corruption"]

ADAECE_DIR = Path(__file__).resolve().parent / "adaece"


def load_adaece(config_name: str | None = None, **kwargs) -> evaluate.EvaluationModule:
    """The local AdaECE metric, kept in memory by default (no Arrow cache files on disk). Config "confidences" takes
    `confidences` + `predictions`, the default takes `probabilities` (N, K); both take `references`."""
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(ADAECE_DIR), config_name, **kwargs)


def adaece_of_logits(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, metric: evaluate.EvaluationModule | None = None
) -> dict[str, float]:
    """Logits (N, K) and labels (N,) -> {"adaece", "accuracy"} from softmax confidences."""
    conf, pred = torch.softmax(logits.detach().double().cpu(), dim=-1).max(dim=-1)  # (N,), (N,)
    metric = metric if metric is not None else load_adaece("confidences")
    out = metric.compute(
        confidences=conf.tolist(), predictions=pred.tolist(), references=labels.cpu().tolist(), n_bins=n_bins
    )
    return {"adaece": out["adaece"], "accuracy": out["accuracy"]}


def calibration_under_corruption(
    predict_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    corruptions: Sequence[str] = CORRUPTIONS,
    intensities: Iterable[int] = range(1, 6),
    seed: int = 0,
    n_bins: int = 15,
) -> dict:
    """`predict_fn` maps images (N, C, H, W) in [0, 1] to logits (N, K); `images` / `labels` (N,) are the test set.

    Returns {"clean": {"adaece", "accuracy"}, "corrupted": {corruption: {str(intensity): {"adaece", "accuracy"}}},
    "n_bins", "n_images", "seed"}. Intensity keys are strings so the dict survives a JSON round trip unchanged."""
    metric = load_adaece("confidences")
    intensities = list(intensities)
    result = {
        "clean": adaece_of_logits(predict_fn(images), labels, n_bins, metric),
        "corrupted": {},
        "n_bins": n_bins,
        "n_images": len(labels),
        "seed": seed,
    }
    for name in corruptions:
        result["corrupted"][name] = {
            str(i): adaece_of_logits(predict_fn(corrupt(images, name, i, seed=seed)), labels, n_bins, metric)
            for i in intensities
        }
    return result
