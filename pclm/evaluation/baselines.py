"""A unigram language model on the same targets as the trained models: the floor any model must beat.

Counts come from the train split (add-one smoothing over the whole vocabulary); perplexity is scored on exactly
the positions the models are scored on: the fixed masked positions (masked LM) or every next token (conditional
LM, `</s>` included, `<s>` never a target)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..pc import IGNORE_INDEX

__all__ = ["unigram_log_probs", "unigram_perplexity"]


def unigram_log_probs(train_ids: Iterable[list[int]], vocab_size: int) -> np.ndarray:
    """log p(token) from train counts with add-one smoothing. Each sequence's first token (<s>) is not counted,
    since it is never a target."""
    counts = np.ones(vocab_size, dtype=np.float64)
    for ids in train_ids:
        np.add.at(counts, np.asarray(ids[1:], dtype=np.int64), 1)
    return np.log(counts / counts.sum())


def unigram_perplexity(log_probs: np.ndarray, eval_rows: Iterable[dict], task: str) -> float:
    """Perplexity of the unigram model on an evaluation split (rows with input_ids, and labels for mlm)."""
    nll, n = 0.0, 0
    for row in eval_rows:
        if task == "mlm":
            targets = [t for t in row["labels"] if t != IGNORE_INDEX]
        else:
            targets = row["input_ids"][1:]
        nll -= float(log_probs[np.asarray(targets, dtype=np.int64)].sum()) if targets else 0.0
        n += len(targets)
    return math.exp(nll / n) if n else math.nan
