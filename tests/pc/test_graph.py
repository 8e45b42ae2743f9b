"""The energy graph on PCLM: feedforward initialisation, the t = 0 gradients, inference, padding."""

import math

import pytest
import torch

from pclm.algorithms import PC
from pclm.models.value_nodes import error_depth, value_node_selector
from pclm.pc import EnergyGraph
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from tests.conftest import lm_batch, tiny_lm

ALL_NODES = "sublayers+scores"


def _bp_sum_loss(model, batch):
    """The BP objective in the energy's normalisation: summed cross-entropy over targets / batch size."""
    out = model(**batch)
    labels = batch["labels"][:, 1:] if model.config.is_decoder else batch["labels"]
    return out.loss * (labels != -100).sum() / batch["input_ids"].shape[0]


def test_feedforward_init_zero_errors_and_energy_equals_loss(task):
    model, batch = tiny_lm(task), lm_batch(task, pad_last=2)
    graph = EnergyGraph(value_node_selector(ALL_NODES), batch_size=3)
    model(**batch, nodes=graph)
    internal = {k: v for k, v in graph.node_energies.items() if k != "output"}
    assert len(internal) == 2 * 4  # scores, attn, ffn, out in each of 2 blocks
    assert all(v.item() == 0.0 for v in internal.values())
    assert math.isclose(graph.energy().item(), _bp_sum_loss(model, batch).item(), rel_tol=1e-6)


def test_t0_gradients_head_equals_bp_and_lower_layers_zero(task):
    model, batch = tiny_lm(task), lm_batch(task)
    _bp_sum_loss(model, batch).backward()
    bp = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    graph = EnergyGraph(value_node_selector("out"), batch_size=3)
    model(**batch, nodes=graph)
    graph.energy().backward()
    for name, p in model.named_parameters():
        if name.startswith("lm_head."):  # above the top value node: BP's gradient exactly
            assert torch.allclose(p.grad, bp[name], atol=1e-6), name
        else:  # below it every error is still zero
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    assert torch.count_nonzero(bp["pclm.word_embeddings.weight"]) > 0


def test_energy_does_not_increase_with_fixed_weights(task):
    model, batch = tiny_lm(task, layer_norm=False), lm_batch(task)
    for p in model.parameters():
        p.requires_grad_(False)
    graph = EnergyGraph(value_node_selector(ALL_NODES), batch_size=3)
    energies = []
    for t in range(30):
        model(**batch, nodes=graph)
        energy = graph.energy()
        energies.append(energy.item())
        energy.backward(inputs=graph.values())
        with torch.no_grad():
            for x in graph.values():
                x -= 0.05 * graph.batch_size * x.grad  # each sample's x by the gradient of its own energy
                x.grad = None
    assert energies[-1] < energies[0]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(energies, energies[1:])), energies


def test_padding_contributes_no_energy(task):
    """A padded sample's inference trajectory and energy equal those of the same sample alone."""
    model = tiny_lm(task, layer_norm=False)
    padded = lm_batch(task, batch=2, length=7, pad_last=3)
    alone = {k: v[1:, :4] for k, v in padded.items()}
    first = {k: v[:1] for k, v in padded.items()}
    pc = PC(inference_steps=5, inference_lr=0.1)
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)  # weights never move

    def final_energy(batch):
        return train_batch(model, batch, pc, frozen, Autograd(value_node_selector(ALL_NODES))).energy_last * len(
            batch["input_ids"]
        )

    assert math.isclose(final_energy(padded), final_energy(first) + final_energy(alone), rel_tol=1e-4)


@pytest.mark.parametrize(
    "spec,depth", [("out", 2), ("out+scores", 3), ("sublayers", 6), ("sublayers+scores", 7), ("scores", 1), ("none", 0)]
)
def test_error_depth(spec, depth):
    assert error_depth(spec, 2) == depth


def test_value_nodes_are_not_parameters(task):
    model, batch = tiny_lm(task), lm_batch(task)
    graph = EnergyGraph(value_node_selector(ALL_NODES), batch_size=3)
    model(**batch, nodes=graph)
    params = {id(p) for p in model.parameters()}
    assert graph.values() and all(id(x) not in params and x.is_leaf for x in graph.values())
    assert len(weight_groups(model)) == 1


def _pruned_vs_full(task, algo):
    import copy

    from pclm.algorithms import build_algorithm
    from pclm.models.value_nodes import value_node_selector
    from pclm.training.step import train_batch
    from tests.conftest import lm_batch, tiny_lm

    class Full(EnergyGraph):
        def __setattr__(self, name, value):  # the step turns pruning on; this graph keeps it off
            super().__setattr__(name, False if name == "prune_settled" else value)

    model = tiny_lm(task)
    twin = copy.deepcopy(model)
    select = value_node_selector("sublayers+scores")
    for m, cls in ((model, EnergyGraph), (twin, Full)):
        algorithm = build_algorithm(algo, 8, 0.2, discount=0.9 if algo == "pc" else None)
        optim = torch.optim.AdamW(m.parameters(), lr=1e-2)
        backend = Autograd(select, new_graph=cls)
        for seed in (1, 2):
            train_batch(m, lm_batch(task, batch=4, length=9, seed=seed), algorithm, optim, backend)
    return model, twin


@pytest.mark.parametrize("algo", ["ipc", "pc"])
def test_pruning_settled_nodes_changes_no_update(task, algo):
    """Nodes with e = 0 recorded as constant zeros: the same weights after two batches of AdamW as the full graph."""
    model, twin = _pruned_vs_full(task, algo)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_pruned_backward_skips_layers_below_the_error(task):
    """At t = 0 only the output is wrong: the pruned backward reaches the readout and nothing below it."""
    from pclm.models.value_nodes import value_node_selector
    from pclm.training.backends.autograd import evaluate_energy
    from tests.conftest import lm_batch, tiny_lm

    model = tiny_lm(task)
    graph = EnergyGraph(value_node_selector("sublayers+scores"), 3)
    value, _ = evaluate_energy(model, lm_batch(task), graph, learn=[0])
    assert model.lm_head.decoder.weight.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("pclm."))
    assert value == pytest.approx(sum(e.item() for e in graph.node_energies.values()) / graph.batch_size)
