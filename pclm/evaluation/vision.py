"""Scoring a vision classifier on in-memory images: logits in batches (`predict_logits`), accuracy and mean
cross-entropy (`evaluate_vision`)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["predict_logits", "evaluate_vision"]


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, classes) on the CPU of `images` (N, C, H, W) in [0, 1], in batches, feedforward (no value nodes).
    Softmax of the result gives the class probabilities."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(pixel_values=images[i : i + batch_size].to(device)).logits.float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate_vision(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> dict[str, float]:
    """Accuracy and mean cross-entropy over (images, labels). Accuracy is NaN when the loss is not finite (NaN
    weights), so the loop sees the divergence."""
    images, labels = data
    device = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        y = labels[i : i + batch_size].to(device)
        logits = model(pixel_values=images[i : i + batch_size].to(device)).logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
    n = max(len(labels), 1)
    loss = loss_sum / n
    return {"accuracy": correct / n if math.isfinite(loss) else math.nan, "loss": loss}
