"""The conv classifiers on the energy graph: feedforward-init energy == plain cross-entropy with every internal error
exactly zero, Z-IL == one BP SGD update (the node placement is a proper chain), every algorithm lowers the loss on a
fixed batch, unknown names are usage errors."""

import copy

import pytest
import torch
import torch.nn.functional as F

from pclm.algorithms import build_algorithm
from pclm.errors import UsageError
from pclm.pc import EnergyGraph, gaussian
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from pclm.vision import CNN, MLP, VISION_MODELS, AlexNet, WidthCNN, build_vision_model

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731

# Tiny versions of each model (reduced widths where the constructor allows), with their input shape (C, H, W).
MODELS = {
    "cnn": (lambda: CNN(in_channels=1, image_size=28, hidden=12, channels=(4, 6, 4)), (1, 28, 28)),
    "alexnet": (lambda: AlexNet(fc_width=12, channels=(4, 6, 8, 6, 6)), (3, 32, 32)),
    "width_cnn": (lambda: WidthCNN(C=1, image_size=16), (3, 16, 16)),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors on a busy 2-core machine: one thread, denormals flushed as in the scripts."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(name, seed=0, batch=4, classes=10):
    torch.manual_seed(seed)
    build, shape = MODELS[name]
    g = torch.Generator().manual_seed(seed + 1)
    data = {
        "pixel_values": torch.randn(batch, *shape, generator=g),
        "labels": torch.randint(0, classes, (batch,), generator=g),
    }
    return build(), data


@pytest.mark.parametrize("name", MODELS)
def test_feedforward_init_energy_is_the_cross_entropy_with_zero_internal_errors(name):
    model, batch = _setup(name)
    B = batch["labels"].shape[0]
    graph = EnergyGraph(ALL_GAUSSIAN, B)
    model(**batch, nodes=graph)
    assert len(graph.x) == model.n_layers - 1  # one node per weight layer but the output layer
    assert all(e.item() == 0.0 for n, e in graph.node_energies.items() if n != "output")
    expected = F.cross_entropy(model(batch["pixel_values"]).logits, batch["labels"], reduction="sum") / B
    assert torch.allclose(graph.energy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_zil_accumulated_updates_equal_one_bp_update(name):
    model, batch = _setup(name)
    model = model.double()  # float64: the oracle holds to rounding, so a tight tolerance catches small leaks
    batch["pixel_values"] = batch["pixel_values"].double()
    start, bp_model = copy.deepcopy(model), copy.deepcopy(model)
    opt = torch.optim.SGD(bp_model.parameters(), lr=0.1)
    bp_model(**batch).loss.backward()  # mean cross-entropy = summed cross-entropy / B, the energy's scale
    opt.step()
    zil = build_algorithm("zil", 0, 1.0, n_layers=model.n_layers)
    assert sum(len(g["params"]) for g in weight_groups(model)) == len(list(model.parameters()))
    train_batch(model, batch, zil, torch.optim.SGD(weight_groups(model), lr=0.1), Autograd(ALL_GAUSSIAN))
    for (n, p), q in zip(model.named_parameters(), bp_model.parameters()):
        assert torch.allclose(p, q, atol=1e-10), n
    assert any(not torch.equal(p, q) for p, q in zip(start.parameters(), bp_model.parameters()))


def _feedforward_loss(model, batch) -> float:
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.mark.parametrize("algo", ["bp", "pc", "ipc"])
@pytest.mark.parametrize("name", MODELS)
def test_every_algorithm_lowers_the_loss_on_a_fixed_batch(name, algo):
    model, batch = _setup(name)
    before = _feedforward_loss(model, batch)
    algorithm = build_algorithm(algo, 3, 0.1)
    optim = torch.optim.AdamW(weight_groups(model), lr=1e-3)
    for _ in range(5):
        train_batch(model, batch, algorithm, optim, Autograd(ALL_GAUSSIAN))
    assert _feedforward_loss(model, batch) < before - 1e-3


def test_registry_builds_by_name_and_rejects_unknown_names():
    assert isinstance(build_vision_model("width_cnn", C=1, image_size=16), WidthCNN)
    assert isinstance(build_vision_model("mlp", width=8), MLP)
    assert set(VISION_MODELS) == {"mlp", "cnn", "alexnet", "width_cnn"}
    with pytest.raises(UsageError, match="unknown vision model 'resnet'"):
        build_vision_model("resnet")
