"""The generative PC net on the energy graph: feedforward-init energy == the image energy of the top-down prediction
from the prior mean (closed form), persistent-graph iPC == one long iPC call (same updates), energy decreases."""

import copy

import pytest
import torch

from pclm.algorithms import IPC
from pclm.pc import EnergyGraph, gaussian
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from pclm.vision.generative import GenerativeMLP

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(seed=0, batch=6, out=12):
    torch.manual_seed(seed)
    model = GenerativeMLP(latent=4, width=8, depth=3, out_features=out)
    images = torch.rand(batch, out, generator=torch.Generator().manual_seed(seed + 1))
    return model, {"pixel_values": images}


def test_initial_energy_is_image_energy_of_prior_mean_prediction():
    model, batch = _setup()
    img = batch["pixel_values"]
    h = torch.zeros(img.shape[0], 4)
    for layer in model.layers[:-1]:
        h = torch.tanh(layer(h))
    expected = 0.5 * (img - model.layers[-1](h)).pow(2).sum() / img.shape[0]
    graph = EnergyGraph(ALL_GAUSSIAN, img.shape[0])
    out = model(**batch, nodes=graph)
    assert torch.allclose(graph.energy(), expected) and torch.allclose(out.loss, expected)
    assert graph.node_energies["latent"].item() == 0.0 and set(graph.x) == {"latent", "layers.1", "layers.2"}
    assert torch.allclose(model(**batch).loss, expected)  # FeedForward: the same prediction, no value nodes


def test_persistent_graph_ipc_equals_one_long_ipc_call_and_lowers_energy():
    model, batch = _setup()
    twin = copy.deepcopy(model)
    steps, lr, gamma = 25, 0.05, 0.1
    backend = Autograd(ALL_GAUSSIAN, keep_values=True)  # one energy graph for every call
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    energies = [train_batch(model, batch, IPC(1, gamma), optim, backend).energy_first for _ in range(steps)]
    graph = backend.graph
    train_batch(twin, batch, IPC(steps, gamma), torch.optim.SGD(weight_groups(twin), lr=lr), Autograd(ALL_GAUSSIAN))
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6)  # value nodes were never re-initialised between the calls
    assert graph.x["latent"].abs().sum() > 0  # moved away from the prior mean, where a fresh graph would start
    assert energies[-1] < 0.5 * energies[0]
