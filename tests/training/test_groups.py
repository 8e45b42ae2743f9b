"""The schedule's weight groups and the optimiser's parameter groups are two things (pclm.training.groups).

Oracles: BERT's rule read off the parameter names (every `.bias` and every layer norm's weight undecayed), AdamW's
decoupled decay in closed form (a zero gradient moves a weight by -lr * wd * w, nothing else), and Z-IL == one BP
step, which must hold whatever the optimiser's grouping, since the layers a step updates are the model's own."""

from __future__ import annotations

import copy

import pytest
import torch

from pclm.algorithms import BP, IPC, PC, build_algorithm
from pclm.pc import gaussian
from pclm.training.backends import Autograd
from pclm.training.groups import layer_groups, no_decay_groups, optimizer_groups, weight_groups
from pclm.training.step import train_batch
from pclm.vision import MLP
from tests.conftest import tiny_lm

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


def test_no_decay_group_is_every_bias_and_layer_norm_weight(task):
    model = tiny_lm(task)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = no_decay_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    expected = sorted(n for n in names.values() if n.endswith(".bias") or "norm." in n)
    assert sorted(names[id(p)] for p in no_decay["params"]) == expected
    assert "pclm.blocks.0.attn_norm.weight" in expected and "lm_head.decoder.bias" in expected
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(set(names.values()) - set(expected))


def test_bp_defaults_to_the_no_decay_group_pc_and_ipc_to_one_decay():
    model = tiny_lm("mlm")
    bp = optimizer_groups(model, BP(), 0.01)
    assert [g["weight_decay"] for g in bp] == [0.01, 0.0]
    for algorithm in (PC(2, 0.1), IPC(2, 0.1)):
        (group,) = optimizer_groups(model, algorithm, 0.01)
        assert group["weight_decay"] == 0.01 and len(group["params"]) == len(list(model.parameters()))


def test_one_adamw_step_decays_only_the_decay_group():
    """A zero gradient: AdamW's step is the decoupled decay alone, w -> w (1 - lr wd), and 0 for weight_decay 0."""
    model = tiny_lm("clm")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = torch.optim.AdamW(optimizer_groups(model, BP(), 0.5), lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optim.step()
    for name, p in model.named_parameters():
        undecayed = name.endswith(".bias") or "norm." in name
        expected = before[name] if undecayed else before[name] * (1 - 0.1 * 0.5)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7, msg=name)


def test_schedule_groups_are_the_models_layers_whatever_the_optimiser():
    model = MLP(in_features=6, width=8, depth=3, classes=4)
    assert [len(g) for g in layer_groups(model)] == [2, 2, 2]  # weight and bias per layer, output first
    assert [len(g["params"]) for g in weight_groups(model)] == [2, 2, 2]
    assert [len(g) for g in layer_groups(tiny_lm("mlm"))] == [len(list(tiny_lm("mlm").parameters()))]


@pytest.mark.parametrize("depth", [2, 4])
def test_zil_equals_bp_with_one_optimiser_group(depth):
    """Z-IL learns layer l at step l: with the schedule groups taken from the model, an optimiser holding every
    weight in one group gives BP's update (taken from the optimiser's groups, only the output layer would learn)."""
    torch.manual_seed(depth)
    model = MLP(in_features=6, width=8, depth=depth, classes=4)
    bp_model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batch = {"pixel_values": torch.randn(5, 6, generator=g), "labels": torch.randint(0, 4, (5,), generator=g)}
    opt = torch.optim.SGD(bp_model.parameters(), lr=0.1)
    logits = bp_model(pixel_values=batch["pixel_values"]).logits
    (torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum") / 5).backward()
    opt.step()
    zil = build_algorithm("zil", 0, 1.0, n_layers=depth)
    train_batch(model, batch, zil, torch.optim.SGD(model.parameters(), lr=0.1), Autograd(ALL_GAUSSIAN))  # one group
    for (name, p), q in zip(model.named_parameters(), bp_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
