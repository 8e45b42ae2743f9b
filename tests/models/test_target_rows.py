"""Only the rows with a target pass the last block (`PCLMModel.forward(only_rows=...)`).

Oracle: the full network (every row through every block, then the rows with a target picked), with the loss and
every parameter gradient computed by plain autograd from it. The hook checks that the short path is really taken
(the last feed-forward sees N rows), and that it is not taken where the last block holds a value node."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pclm import PCLMForCausalLM, PCLMForMaskedLM
from pclm.pc import IGNORE_INDEX, EnergyGraph, gaussian

from .test_models import random_ids, random_model


def _batch(cls, seed: int = 3):
    ids = random_ids(3, 10, seed)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padding
    mask[2, 4:] = 0
    g = torch.Generator().manual_seed(seed)
    if cls is PCLMForMaskedLM:
        labels = torch.full_like(ids, IGNORE_INDEX)
        picked = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
        picked[0, 2] = True
        labels[picked] = ids[picked]
        targets = labels
    else:
        labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    return ids, mask, labels, targets


def _reference(model, ids, mask, targets):
    """Summed cross-entropy / batch size from every row's last hidden state, and its parameter gradients."""
    model.zero_grad()
    h = model.pclm(ids, mask).last_hidden_state  # (B, T, C): no rows left out
    keep = targets != IGNORE_INDEX
    logits = model.lm_head(h[keep])
    loss = F.cross_entropy(logits, targets[keep], reduction="sum") / ids.shape[0]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _last_ffn_rows(model) -> list[int]:
    seen: list[int] = []
    model.pclm.blocks[-1].intermediate.register_forward_hook(
        lambda m, i, o: seen.append(i[0].reshape(-1, i[0].shape[-1]).shape[0])
    )
    return seen


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
@pytest.mark.parametrize("layers", [1, 2])
def test_training_graph_matches_the_full_network(cls, layers):
    model = random_model(cls, num_hidden_layers=layers)
    ids, mask, labels, targets = _batch(cls)
    ref_loss, ref_grads = _reference(model, ids, mask, targets)
    model.zero_grad()
    seen = _last_ffn_rows(model)
    graph = EnergyGraph(lambda name: None, ids.shape[0])  # BP's graph: the output node only
    model(ids, attention_mask=mask, labels=labels, nodes=graph)
    graph.energy().backward()
    n = int((targets != IGNORE_INDEX).sum())
    assert seen == [n] and n < ids.numel()
    torch.testing.assert_close(graph.energy().detach(), ref_loss, rtol=1e-5, atol=1e-5)
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_a_value_node_in_the_last_block_keeps_every_row(cls):
    model = random_model(cls, num_hidden_layers=2)
    ids, mask, labels, targets = _batch(cls)
    seen = _last_ffn_rows(model)
    graph = EnergyGraph(lambda name: gaussian if name == "blocks.1.out" else None, ids.shape[0])
    model(ids, attention_mask=mask, labels=labels, nodes=graph)
    assert seen == [ids.numel()]
    assert graph.x["blocks.1.out"].shape == (*ids.shape, model.config.hidden_size)


def test_masked_lm_logits_with_labels_are_the_full_logits_at_the_masked_rows():
    model = random_model(PCLMForMaskedLM)
    ids, mask, labels, _ = _batch(PCLMForMaskedLM)
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits  # (B, T, V): no labels, no rows left out
        out = model(ids, attention_mask=mask, labels=labels)
    picked = labels != IGNORE_INDEX
    torch.testing.assert_close(out.logits, full[picked], rtol=1e-5, atol=1e-5)
    expected = F.cross_entropy(full[picked], labels[picked])
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
