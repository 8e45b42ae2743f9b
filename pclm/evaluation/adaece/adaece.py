"""Adaptive expected calibration error (AdaECE, equal-mass bins) as a local `evaluate` metric.

The confidence of a prediction is its top class probability. Samples are sorted by confidence (a stable sort, so
ties keep their input order) and cut into `n_bins` consecutive bins of (nearly) equal count: N = q * n_bins + r gives
r bins of q + 1 then n_bins - r bins of q (numpy.array_split); with fewer samples than bins each sample is a bin.
Then AdaECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)|, acc the fraction of correct predictions in the bin and
conf its mean confidence (Nguyen & O'Connor 2015; Mukhoti et al. 2020). Equal-mass bins avoid the nearly empty
low-confidence bins of equal-width ECE.

Inputs are `probabilities` (N, K) and `references` (N,); loaded with config name "confidences", the module takes
`confidences` (N,) and `predictions` (N,) instead of `probabilities` (cheaper when K is large or N is big).
Loaded from this folder, never from the Hub: `pclm.evaluation.calibration.load_adaece()`. This file is copied by
`evaluate` into its module cache, so it imports nothing from `pclm`.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Adaptive ECE: expected calibration error over equal-mass confidence bins."

_KWARGS_DESCRIPTION = """
Args:
    probabilities (`list[list[float]]`): per sample, the predicted class probabilities (K of them); or, with config
        name "confidences", confidences (`list[float]`) and predictions (`list[int]`): the top probability, its class.
    references (`list[int]`): per sample, the true class.
    n_bins (`int`, default 15): number of equal-mass bins.
Returns:
    adaece (`float`): sum over bins of (bin size / N) * |bin accuracy - bin mean confidence|; nan with no samples.
    accuracy (`float`): fraction of correct predictions; nan with no samples.
    bins (`int`): number of non-empty bins used, min(n_bins, N).
Examples:
    >>> metric = evaluate.load("pclm/evaluation/adaece", "confidences")
    >>> metric.compute(confidences=[0.75, 0.75, 0.75, 0.75], predictions=[1, 1, 1, 1], references=[1, 1, 1, 0],
    ...                n_bins=1)
    {'adaece': 0.0, 'accuracy': 0.75, 'bins': 1}
"""


class AdaECE(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            # one input form per loaded module (evaluate fixes the form at the first batch): config "confidences"
            # takes confidences + predictions, any other config (the default) takes probabilities
            features=datasets.Features(
                {
                    "confidences": datasets.Value("float64"),
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
                if self.config_name == "confidences"
                else {
                    "probabilities": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(
        self,
        references: list[int],
        probabilities: list[list[float]] | None = None,
        confidences: list[float] | None = None,
        predictions: list[int] | None = None,
        n_bins: int = 15,
    ) -> dict[str, float | int]:
        if n_bins < 1:
            raise ValueError(f"n_bins must be at least 1, got {n_bins}")
        refs = np.asarray(references, dtype=np.int64)
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=np.float64).reshape(len(refs), -1)  # (N, K)
            conf, pred = probs.max(axis=1), probs.argmax(axis=1)
        else:
            conf, pred = np.asarray(confidences, dtype=np.float64), np.asarray(predictions, dtype=np.int64)
        n = len(refs)
        if n == 0:
            return {"adaece": math.nan, "accuracy": math.nan, "bins": 0}
        correct = (pred == refs).astype(np.float64)
        order = np.argsort(conf, kind="stable")
        bins = [b for b in np.array_split(order, min(n_bins, n)) if len(b)]
        # float64 sums in a fixed order: the same inputs give bit-identical scores
        ece = sum(len(b) / n * abs(correct[b].mean() - conf[b].mean()) for b in bins)
        return {"adaece": float(ece), "accuracy": float(correct.mean()), "bins": len(bins)}
