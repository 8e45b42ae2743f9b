"""Layer-parallel MLP (one batched matmul over stacked layers) against the sequential MLP as the oracle: the same
energies and the same updates under the same schedule and optimiser."""

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pclm.algorithms import BP, IPC, PC
from pclm.pc import EnergyGraph, gaussian
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from pclm.vision import MLP, StackedMLP

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731
FEATURES, WIDTH, CLASSES = 6, 8, 4


def _batch(seed, batch=5):
    g = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(batch, FEATURES, generator=g),
        "labels": torch.randint(0, CLASSES, (batch,), generator=g),
    }


def _pair(depth, act="tanh", seed=0):
    torch.manual_seed(seed)
    mlp = MLP(in_features=FEATURES, width=WIDTH, depth=depth, classes=CLASSES, act=act)
    return mlp, StackedMLP.from_mlp(mlp)


def _assert_same_parameters(mlp, stacked, atol):
    for (name, p), q in zip(mlp.named_parameters(), stacked.to_mlp().parameters(), strict=True):
        assert torch.allclose(p, q, atol=atol, rtol=0), (name, (p - q).abs().max().item())


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_conversion_round_trips_and_feedforward_matches(depth):
    mlp, stacked = _pair(depth, act="relu")
    assert stacked.weight_t.shape == (depth - 2, WIDTH, WIDTH)
    _assert_same_parameters(mlp, stacked, atol=0)
    back = StackedMLP.from_mlp(stacked.to_mlp())
    assert all(torch.equal(p, q) for p, q in zip(back.parameters(), stacked.parameters()))
    batch = _batch(1)
    assert torch.allclose(mlp(**batch).logits, stacked(**batch).logits, atol=1e-6)
    assert torch.allclose(mlp(**batch).loss, stacked(**batch).loss, atol=1e-6)


@pytest.mark.parametrize("depth", [2, 4])
def test_energies_equal_at_feedforward_init_and_at_any_value_nodes(depth):
    mlp, stacked = _pair(depth)
    batch = _batch(2)
    seq, par = EnergyGraph(ALL_GAUSSIAN, 5), EnergyGraph(ALL_GAUSSIAN, 5)
    ce = mlp(**batch).loss.item()
    mlp(**batch, nodes=seq)
    stacked(**batch, nodes=par)
    assert list(par.x) == ["hidden"] and par.x["hidden"].shape == (depth - 1, 5, WIDTH)
    assert torch.allclose(par.x["hidden"], torch.stack(seq.values()), atol=1e-6)
    assert seq.energy().item() == pytest.approx(par.energy().item(), abs=1e-6) == pytest.approx(ce, abs=1e-6)
    # away from the feedforward state: random value nodes, nonzero errors in every layer
    g = torch.Generator().manual_seed(3)
    moved = [x.detach() + torch.randn(x.shape, generator=g) for x in seq.values()]
    seq.x = {name: x.clone().requires_grad_(True) for name, x in zip(seq.x, moved)}
    par.x = {"hidden": torch.stack(moved).requires_grad_(True)}
    mlp(**batch, nodes=seq)
    stacked(**batch, nodes=par)
    assert seq.energy().item() > 1.0
    assert seq.energy().item() == pytest.approx(par.energy().item(), rel=1e-6)
    # and the same local gradients: dF/dx of every layer
    seq.energy().backward(inputs=seq.values())
    par.energy().backward(inputs=par.values())
    assert torch.allclose(torch.stack([x.grad for x in seq.values()]), par.x["hidden"].grad, atol=1e-6)


@pytest.mark.parametrize("depth", [2, 5])
@pytest.mark.parametrize(
    "algorithm,optim",
    [
        (IPC(4, 0.3), "sgd"),
        (IPC(6, 0.5), "adamw"),
        (PC(5, 0.2), "sgd"),
        (BP(), "adamw"),
    ],
    ids=["ipc-sgd", "ipc-adamw", "pc-sgd", "bp-adamw"],
)
def test_same_updates_as_the_sequential_mlp(depth, algorithm, optim):
    mlp, stacked = _pair(depth)

    def make(model):
        if optim == "sgd":
            return torch.optim.SGD(weight_groups(model), lr=0.05, momentum=0.5)
        # eps=1e-3: with Adam's default 1e-8, a weight whose gradient is ~1e-7 moves by ~lr * sign(gradient), so
        # float rounding (the stacked and sequential matmuls sum in different orders) decides a 0.01 step and the
        # comparison passes or fails by the seed's luck; a larger eps keeps the update a smooth function of the
        # gradient, which is what "the same updates to float tolerance" can check
        return torch.optim.AdamW(weight_groups(model), lr=0.01, weight_decay=0.01, eps=1e-3)

    opt_seq, opt_par = make(mlp), make(stacked)
    for seed in range(3):
        batch = _batch(10 + seed)
        a = train_batch(mlp, batch, algorithm, opt_seq, Autograd(ALL_GAUSSIAN))
        b = train_batch(stacked, batch, algorithm, opt_par, Autograd(ALL_GAUSSIAN))
        assert (a.loss, a.energy_first, a.energy_last) == pytest.approx(
            (b.loss, b.energy_first, b.energy_last), abs=1e-5
        )
    before = StackedMLP.from_mlp(_pair(depth)[0])
    assert not all(torch.equal(p, q) for p, q in zip(before.parameters(), stacked.parameters()))  # it learned
    _assert_same_parameters(mlp, stacked, atol=1e-5)


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _ops_of_one_evaluation(model):
    """aten ops of one iPC evaluation (forward + backward of the energy) with existing value nodes."""
    batch, graph = _batch(4), EnergyGraph(ALL_GAUSSIAN, 5)
    model(**batch, nodes=graph)  # feedforward initialisation: sequential by nature, not counted
    with _CountOps() as count:
        model(**batch, nodes=graph)
        graph.energy().backward()
    matmuls = sum(n for op, n in count.ops.items() if op in ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear"))
    return matmuls, sum(count.ops.values())


def test_layer_parallel_evaluation_issues_the_same_ops_at_every_depth():
    """The point of the mode: predictions, error propagation and weight gradients of all hidden layers are batched,
    so the number of kernels launched (and matmuls on the critical path) does not grow with depth."""
    seq3, seq9 = (_ops_of_one_evaluation(_pair(d)[0]) for d in (3, 9))
    par3, par9 = (_ops_of_one_evaluation(_pair(d)[1]) for d in (3, 9))
    assert par3 == par9
    assert seq9[0] > seq3[0] >= 3 * 2 and seq9[1] > seq3[1]  # the loop: at least prediction + gradient per layer
    assert par9[0] < seq9[0]


def test_rejects_a_chain_without_hidden_nodes():
    with pytest.raises(ValueError):
        StackedMLP(depth=1)
    with pytest.raises(ValueError):
        StackedMLP.from_mlp(MLP(in_features=3, depth=1))
