"""Per-sample negative log-likelihoods, from which perplexity = exp(sum NLL / number of targets).

Perplexity is computed over the masked positions (masked LM, with masks fixed by `premask`) or over every
next-token prediction (conditional LM; position t predicts token t+1; padding is ignored)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..pc import IGNORE_INDEX

__all__ = ["per_sample_nll"]


def per_sample_nll(
    logits: torch.Tensor, labels: torch.Tensor, causal: bool, drop_ids: tuple[int, ...] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL and target count per sample, each (B,); targets whose id is in `drop_ids` are not counted.

    logits: (B, T, V) for the causal model; for the masked model (N, V) at the masked positions (row-major), as
    PCLMForMaskedLM returns them, or (B, T, V) at every position.
    labels: (B, T), -100 where ignored.
    """
    for token in drop_ids:
        labels = labels.masked_fill(labels == token, IGNORE_INDEX)
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
        return nll.sum(1), (labels != IGNORE_INDEX).sum(1)
    picked = labels != IGNORE_INDEX
    if logits.dim() == 3:
        logits = logits[picked]
    nll = F.cross_entropy(logits.float(), labels[picked], reduction="none")
    sample = picked.nonzero()[:, 0]
    sums = torch.zeros(labels.shape[0], dtype=nll.dtype, device=nll.device).index_add_(0, sample, nll)
    return sums, picked.sum(1)
