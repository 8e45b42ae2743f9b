"""Scoring models: per-sample NLL (`nll`), the unigram baseline (`baselines`), calibration under corruptions
(`calibration`), and the `evaluate` metrics shipped with pclm, loaded from their local folders (no Hub access).

`load_perplexity()` returns the corpus-perplexity metric of `perplexity/perplexity.py`: feed it per-sample
`nll_sum` / `count` (from `pclm.evaluation.nll.per_sample_nll`) with `add_batch`, then `compute()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

__all__ = ["PERPLEXITY_DIR", "load_perplexity"]

PERPLEXITY_DIR = Path(__file__).resolve().parent / "perplexity"


def load_perplexity(**kwargs) -> evaluate.EvaluationModule:
    """The local perplexity metric. Kept in memory by default: callers pass values already gathered from every
    process, so each process scores the whole split and no Arrow cache files are shared between processes."""
    import evaluate  # here, so `pclm.evaluation.baselines` and `.nll` load without it

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(PERPLEXITY_DIR), **kwargs)
