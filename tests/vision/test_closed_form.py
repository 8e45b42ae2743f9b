"""The MLP's mini-batch in closed form (`pclm.vision.ClosedFormMLP`, `train.backend=closed_form`) makes the same updates as autograd's
backward of the energy graph, step by step, for every value-node algorithm, activation and optimiser."""

from __future__ import annotations

import copy

import pytest
import torch

from pclm.algorithms import BP, IPC, PC, ZIL
from pclm.errors import UsageError
from pclm.pc import gaussian
from pclm.training.backends import Autograd
from pclm.training.step import Diverged, train_batch, weight_groups
from pclm.vision import CNN, MLP, ClosedFormMLP, StackedMLP

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731
ALGOS = {
    "ipc": lambda: IPC(5, 0.3),
    "ipc-xbatch": lambda: IPC(5, 0.3, x_grads="batch"),  # x moves by the batch mean's gradient
    "pc": lambda: PC(5, 0.3, discount=0.5),
    "zil": lambda: ZIL(4, 1.0),
    "bp": lambda: BP(),
}
OPTIMISERS = {
    "adamw-fused": lambda groups: torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.01, fused=True),
    "adam-fused": lambda groups: torch.optim.Adam(groups, lr=1e-2, weight_decay=0.01, fused=True),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=1e-2),
    "sgd": lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9),
}


def _batches(n: int, size: int = 8, features: int = 12, classes: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {
            "pixel_values": torch.randn(size, features, generator=g),
            "labels": torch.randint(0, classes, (size,), generator=g),
        }
        for _ in range(n)
    ]


def _both(act: str, algo: str, optimiser: str, depth: int = 4, batches=None):
    """Train two copies of one MLP on the same batches, with autograd and with ClosedFormMLP."""
    torch.manual_seed(0)
    eager = MLP(in_features=12, width=10, depth=depth, classes=4, act=act)
    closed, start = copy.deepcopy(eager), copy.deepcopy(eager)
    runs = []
    for model, use_closed in ((eager, False), (closed, True)):
        optim = OPTIMISERS[optimiser](weight_groups(model))
        algorithm = ALGOS[algo]()
        backend = ClosedFormMLP(model, optim) if use_closed else Autograd(ALL_GAUSSIAN)
        stats = [train_batch(model, b, algorithm, optim, backend) for b in batches or _batches(3)]
        runs.append((model, optim, stats))
    return runs, start


@pytest.mark.parametrize("optimiser", sorted(OPTIMISERS))
@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_closed_form_equals_autograd(act, algo, optimiser):
    ((eager, optim_e, stats_e), (closed, optim_f, stats_f)), start = _both(act, algo, optimiser)
    for a, b in zip(stats_e, stats_f):
        assert a.loss == pytest.approx(b.loss, rel=1e-6)
        assert a.energy_first == pytest.approx(b.energy_first, rel=1e-6)
        assert a.energy_last == pytest.approx(b.energy_last, rel=1e-5)
    for (name, p), q, p0 in zip(eager.named_parameters(), closed.parameters(), start.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), name
        assert p.grad is None and q.grad is None
    moved = [not torch.equal(p, p0) for p, p0 in zip(eager.parameters(), start.parameters())]
    assert all(moved)  # a comparison of two copies that never moved would prove nothing
    # the optimiser's state (what a checkpoint saves) advanced the same way
    for p, q in zip(eager.parameters(), closed.parameters()):
        for key, value in optim_e.state[p].items():
            assert torch.allclose(value, optim_f.state[q][key], atol=1e-6, rtol=1e-5), key


@pytest.mark.parametrize("depth", [1, 2])
def test_closed_form_equals_autograd_on_shallow_chains(depth):
    ((eager, _, stats_e), (closed, _, stats_f)), _ = _both("tanh", "ipc", "adamw-fused", depth=depth)
    assert [s.energy_last for s in stats_e] == pytest.approx([s.energy_last for s in stats_f], rel=1e-5)
    for p, q in zip(eager.parameters(), closed.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)


def test_last_smaller_batch_uses_its_own_buffers():
    batches = _batches(2) + _batches(1, size=3) + _batches(1)
    ((eager, _, _), (closed, _, _)), _ = _both("gelu", "ipc", "adamw-fused", batches=batches)
    for p, q in zip(eager.parameters(), closed.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)


def test_divergence_raises_at_the_same_step_with_the_same_weights():
    """Both stop at the first non-finite energy, before updating from it: the steps before it moved the weights
    identically (gamma = 1e30 makes the second evaluation's energy infinite)."""
    torch.manual_seed(0)
    eager = MLP(in_features=12, width=10, depth=3, classes=4, act="tanh")
    closed = copy.deepcopy(eager)
    messages = []
    for model, use_closed in ((eager, False), (closed, True)):
        optim = torch.optim.AdamW(weight_groups(model), lr=1e-2, fused=True)
        with pytest.raises(Diverged) as err:
            backend = ClosedFormMLP(model, optim) if use_closed else Autograd(ALL_GAUSSIAN)
            train_batch(model, _batches(1)[0], IPC(5, 1e30), optim, backend)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == "energy is inf at inference step 1"
    for p, q in zip(eager.parameters(), closed.parameters()):
        assert torch.isfinite(q).all() and torch.allclose(p, q, atol=1e-6)


def test_refuses_what_it_cannot_run():
    cnn = CNN(in_channels=1, image_size=8, classes=4)
    with pytest.raises(UsageError, match="model.name=mlp"):
        ClosedFormMLP(cnn, torch.optim.SGD(weight_groups(cnn), lr=0.1))
    mlp = MLP(in_features=12, width=10, depth=3, classes=4)
    with pytest.raises(UsageError, match="one weight group per layer"):
        ClosedFormMLP(mlp, torch.optim.SGD(mlp.parameters(), lr=0.1))


@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("algo", ["ipc", "pc"])
def test_fused_layer_parallel_equals_autograd_on_the_stacked_mlp(algo, batch_size):
    """On a StackedMLP (every hidden-to-hidden layer one batched matmul) the closed form makes autograd's updates,
    and both equal the sequential MLP's (the layer-parallel mode is the same algorithm). SGD: Adam would turn the
    float noise between a batched and a sequential matmul (where the errors should be exactly zero, at t = 0) into
    full-size steps."""
    torch.manual_seed(0)
    mlp = MLP(in_features=12, width=10, depth=5, classes=4, act="gelu")
    models = {"mlp": mlp, "stacked": StackedMLP.from_mlp(mlp), "stacked_fused": StackedMLP.from_mlp(mlp)}
    for name, model in models.items():
        groups = [{"params": list(model.parameters())}]  # one group: what StackedMLP's weight_groups gives
        optim = torch.optim.SGD(groups, lr=0.05)
        backend = ClosedFormMLP(model, optim) if name.endswith("closed") else Autograd(ALL_GAUSSIAN)
        for b in _batches(3, size=batch_size):
            train_batch(model, b, ALGOS[algo](), optim, backend)
    reference = models["stacked"].to_mlp()
    for other in (models["stacked_fused"].to_mlp(), models["mlp"]):
        for p, q in zip(reference.parameters(), other.parameters()):
            assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
    with pytest.raises(UsageError, match="BP on the sequential MLP"):
        optim = torch.optim.SGD([{"params": list(models["stacked"].parameters())}], lr=0.1)
        train_batch(models["stacked"], _batches(1)[0], BP(), optim, ClosedFormMLP(models["stacked"], optim))
