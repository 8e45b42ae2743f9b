"""Corpus perplexity from per-sample summed negative log-likelihoods, as a local `evaluate` metric.

Each sample contributes the NLL summed over its targets (`nll_sum`, nats) and the number of those targets (`count`);
the corpus score is perplexity = exp(sum nll_sum / sum count). Averaging per-sample perplexities instead would weight
short sentences as much as long ones, which is not the paper's (or any LM benchmark's) definition.

Loaded from this folder, never from the Hub: `pclm.evaluation.load_perplexity()`. This file is copied by `evaluate`
into its module cache, so it imports nothing from `pclm`.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Corpus perplexity exp(sum NLL / number of targets) from per-sample NLL sums and target counts."

_KWARGS_DESCRIPTION = """
Args:
    nll_sum (`list[float]`): per sample, the negative log-likelihood summed over its targets, in nats.
    count (`list[int]`): per sample, the number of targets (masked positions or next-token predictions).
Returns:
    perplexity (`float`): exp(sum nll_sum / sum count); nan when there are no targets.
    nll (`float`): mean NLL per target, sum nll_sum / sum count; nan when there are no targets.
    targets (`int`): sum count.
Examples:
    >>> metric = evaluate.load("pclm/evaluation/perplexity")
    >>> metric.compute(nll_sum=[2.0, 4.0], count=[1, 2])
    {'perplexity': 7.38905609893065, 'nll': 2.0, 'targets': 3}
"""


class Perplexity(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll_sum": datasets.Value("float64"), "count": datasets.Value("int64")}),
        )

    def _compute(self, nll_sum: list[float], count: list[int]) -> dict[str, float | int]:
        # float64 sums in a fixed order: the same samples give bit-identical scores run after run.
        total, targets = float(np.sum(np.asarray(nll_sum, dtype=np.float64))), int(np.sum(count, dtype=np.int64))
        nll = total / targets if targets else math.nan
        return {"perplexity": math.exp(nll) if targets else math.nan, "nll": nll, "targets": targets}
