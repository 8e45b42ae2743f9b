"""Two different groupings of a model's weights, kept apart:

* schedule groups (`layer_groups`): what `Algorithm.learning_groups` indexes. One per weight layer, nearest the
  output first, for chains that define `pc_layers()` (Z-IL learns layer l at step l); one group otherwise.
* optimiser parameter groups (`optimizer_groups`): what the weight optimiser's settings apply to. By default for BP,
  BERT's two groups (`no_decay_groups`: biases and layer-norm weights without weight decay); for PC, iPC and Z-IL,
  one group per schedule group with the same weight decay for all (`weight_groups`), as before the split, so their
  earlier runs stay comparable and resumable (`Algorithm.no_decay_group` says which).

`BatchRun` steps the optimiser on the weights of the schedule groups that learn and leaves the others without a
gradient (an optimiser skips those), so the two groupings need not agree; the closed-form MLP (`ClosedFormMLP`), whose
optimiser kernels step whole parameter groups, asks for `weight_groups`."""

from __future__ import annotations

from torch import nn

from ..algorithms import Algorithm

__all__ = ["layer_groups", "weight_groups", "no_decay_groups", "optimizer_groups", "group_sizes"]


def _inner(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel (or similar) wrapper, which hides `pc_layers`."""
    return getattr(model, "module", model)


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The schedule's weight groups: `pc_layers()` (nearest the output first) where the model defines it, else one
    group of every trainable weight."""
    model = _inner(model)
    layers = getattr(model, "pc_layers", None)
    if layers is None:
        return [[p for p in model.parameters() if p.requires_grad]]
    return [list(params) for params in layers()]


def weight_groups(model: nn.Module) -> list[dict]:
    """Optimiser parameter groups, one per schedule group (`layer_groups`), every one with the optimiser's weight
    decay."""
    return [{"params": params} for params in layer_groups(model)]


def no_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """BERT's optimiser groups: the weight matrices and embeddings with `weight_decay`; every bias and every
    layer-norm weight (a scale, which decay would pull towards 0 rather than its neutral 1) with none. An empty
    group is left out."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if name == "bias" or isinstance(module, nn.LayerNorm) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def optimizer_groups(model: nn.Module, algorithm: Algorithm, weight_decay: float) -> list[dict]:
    """The weight optimiser's parameter groups for `algorithm` (module doc): `no_decay_groups` where
    `algorithm.no_decay_group`, else `weight_groups` with `weight_decay` for every group."""
    if algorithm.no_decay_group:
        return no_decay_groups(model, weight_decay)
    return [{**g, "weight_decay": weight_decay} for g in weight_groups(model)]


def group_sizes(groups: list[dict]) -> list[int]:
    """Number of tensors in each parameter group: what an optimiser's saved state must match."""
    return [len(g["params"]) for g in groups]
