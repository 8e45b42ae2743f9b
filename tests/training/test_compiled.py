"""The compiled backend (`pclm.training.backends.Compiled`, `train.backend=compiled`) gives the same energies, losses
and updates as the autograd backend (eager forward + backward), for every algorithm, on a chain (MLP) and a conv net.

The fast tests trace with the "aot_eager" backend (the same functional graphs, no code generation); one slow test
uses the real "inductor" backend."""

from __future__ import annotations

import copy

import pytest
import torch

from pclm.algorithms import BP, IPC, PC, ZIL
from pclm.pc import gaussian
from pclm.training.backends import Autograd, Compiled, CompiledEnergy
from pclm.training.step import train_batch, weight_groups
from pclm.vision import MLP
from pclm.vision.cnn import CNN

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731

ALGOS = {"bp": BP(), "pc": PC(4, 0.1), "ipc": IPC(4, 0.1), "zil": ZIL(3, 1.0)}


def _mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(in_features=12, width=10, depth=3, classes=4, act="tanh")


def _batches(n: int, features: tuple[int, ...] = (12,), classes: int = 4, size: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {
            "pixel_values": torch.randn(size, *features, generator=g),
            "labels": torch.randint(0, classes, (size,), generator=g),
        }
        for _ in range(n)
    ]


def _train(model, batches, algorithm, torch_backend: str | None, eager: bool = False):
    optim = torch.optim.SGD(weight_groups(model), lr=0.05)
    backend = Autograd(ALL_GAUSSIAN) if eager else Compiled(model, ALL_GAUSSIAN, torch_backend)
    stats = [train_batch(model, b, algorithm, optim, backend) for b in batches]
    return model, stats


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("backend", [None, "aot_eager"])
def test_compiled_equals_eager_on_mlp(algo, backend):
    torch._dynamo.reset()
    base, batches = _mlp(), _batches(3)
    eager, eager_stats = _train(copy.deepcopy(base), batches, ALGOS[algo], None, eager=True)
    comp, comp_stats = _train(copy.deepcopy(base), batches, ALGOS[algo], backend)
    for a, b in zip(eager_stats, comp_stats):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        assert a.energy_first == pytest.approx(b.energy_first, rel=1e-5, abs=1e-7)
        assert a.energy_last == pytest.approx(b.energy_last, rel=1e-5, abs=1e-7)
    for (name, p), q in zip(eager.named_parameters(), comp.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    moved = max((p - q).abs().max().item() for p, q in zip(base.parameters(), comp.parameters()))
    assert moved > 1e-3  # the weights did train


def test_compiled_equals_eager_on_cnn():
    torch._dynamo.reset()
    torch.manual_seed(0)
    base = CNN(in_channels=1, image_size=8, classes=3, hidden=6, channels=(2, 3, 2))
    batches = _batches(2, features=(1, 8, 8), classes=3)
    eager, _ = _train(copy.deepcopy(base), batches, IPC(4, 0.1), None, eager=True)
    comp, _ = _train(copy.deepcopy(base), batches, IPC(4, 0.1), "aot_eager")
    for p, q in zip(eager.parameters(), comp.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_compiled_writes_the_gradients_autograd_would():
    """One evaluation, no optimiser: .grad of every weight and value node equals the eager backward's."""
    from pclm.pc import EnergyGraph

    model, (batch,) = _mlp(), _batches(1)
    graph = EnergyGraph(ALL_GAUSSIAN, 8)
    model(**batch, nodes=graph)  # create the value nodes (x = mu)
    with torch.no_grad():  # move them off the feedforward values so every error is non-zero
        for x in graph.values():
            x.add_(0.3 * torch.randn_like(x))
    energy = None
    graph2 = EnergyGraph(ALL_GAUSSIAN, 8)
    graph2.x = {k: v.detach().clone().requires_grad_(True) for k, v in graph.x.items()}
    out = model(**batch, nodes=graph2)
    graph2.energy().backward()
    eager_w = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    energy, loss = CompiledEnergy(model, torch_backend=None).evaluate(graph, batch, weights=True)
    assert energy.item() == pytest.approx(graph2.energy().item(), rel=1e-6)
    assert loss.item() == pytest.approx(out.loss.item(), rel=1e-6)
    for name in graph.x:
        torch.testing.assert_close(graph.x[name].grad, graph2.x[name].grad)
    for p, g in zip(model.parameters(), eager_w):
        torch.testing.assert_close(p.grad, g)
    model.zero_grad(set_to_none=True)
    CompiledEnergy(model, torch_backend=None).evaluate(graph, batch, weights=False)  # value nodes only
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_inductor_equals_eager():
    torch._dynamo.reset()
    base, batches = _mlp(), _batches(2)
    eager, _ = _train(copy.deepcopy(base), batches, IPC(4, 0.1), None, eager=True)
    comp, _ = _train(copy.deepcopy(base), batches, IPC(4, 0.1), "inductor")
    for p, q in zip(eager.parameters(), comp.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task", ["clm", "mlm"])
def test_compiled_equals_eager_on_the_language_models(task):
    """The transformer graphs (Gaussian and softmax-KL "vec." nodes, masks) under torch.func + aot_eager: the same
    losses and weights after two iPC batches."""

    from pclm.algorithms import build_algorithm
    from pclm.config import load_config
    from pclm.models.value_nodes import value_node_selector
    from tests.conftest import REPO, lm_batch, tiny_lm

    torch._dynamo.reset()
    cfg = load_config(REPO / "configs" / f"{task}_ipc.yaml", [])
    base = tiny_lm(task, **cfg.model)  # the tiny model with the shipped config's model settings
    algorithm = build_algorithm(cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount)
    select = value_node_selector(cfg.pc.value_nodes)
    batches = [lm_batch(task, batch=4, length=10) for _ in range(2)]
    runs = []
    for backend in ("eager", "aot_eager"):
        model = copy.deepcopy(base).train()
        optim = torch.optim.SGD(weight_groups(model), lr=0.05)
        chosen = Autograd(select) if backend == "eager" else Compiled(model, select, backend)
        runs.append((model, [train_batch(model, b, algorithm, optim, chosen) for b in batches]))
    (eager, eager_stats), (comp, comp_stats) = runs
    assert [s.loss for s in eager_stats] == pytest.approx([s.loss for s in comp_stats], rel=1e-5)
    # eager reads out through the chunked linear + cross-entropy, the compiled path through the full logits: the
    # same sums in another order, so float32 noise of a few 1e-6 on weights of size ~0.1
    for p, q in zip(eager.parameters(), comp.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
