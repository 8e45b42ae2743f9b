"""Update schedules against oracles: Z-IL == BP, iPC and PC against hand-derived update rules, and the
depth-vs-T trap on every shipped config."""

import copy
from pathlib import Path

import pytest
import torch

from pclm.algorithms import IPC, PC, ZIL, build_algorithm
from pclm.config import load_config
from pclm.errors import UsageError
from pclm.models import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM
from pclm.models.value_nodes import value_node_selector
from pclm.pc import gaussian
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from pclm.vision import MLP
from tests.conftest import lm_batch, tiny_lm

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("[mc]lm_*.yaml"))
ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


def _mlp_batch(seed=0, batch=5, features=6, classes=4):
    g = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(batch, features, generator=g),
        "labels": torch.randint(0, classes, (batch,), generator=g),
    }


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_zil_accumulated_updates_equal_one_bp_update(depth):
    torch.manual_seed(depth)
    model = MLP(in_features=6, width=8, depth=depth, classes=4)
    bp_model = copy.deepcopy(model)
    batch = _mlp_batch()
    # BP: one SGD step on the summed cross-entropy / batch size (the energy's normalisation).
    opt = torch.optim.SGD(bp_model.parameters(), lr=0.1)
    logits = bp_model(pixel_values=batch["pixel_values"]).logits
    (torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum") / 5).backward()
    opt.step()
    zil = build_algorithm("zil", 0, 1.0, n_layers=depth)
    assert zil.steps == depth
    train_batch(model, batch, zil, torch.optim.SGD(weight_groups(model), lr=0.1), Autograd(ALL_GAUSSIAN))
    for (name, p), q in zip(model.named_parameters(), bp_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_zil_rejects_other_inference_lr_and_transformer():
    with pytest.raises(ValueError):
        ZIL(3, 0.5)
    with pytest.raises(UsageError):
        build_algorithm("zil", 4, 1.0)
    with pytest.raises(UsageError, match="unknown algorithm 'foo'"):
        build_algorithm("foo", 4, 1.0)


def _manual(model: MLP, batch, steps: int, lr: float, gamma: float, ipc: bool):
    """Hand-derived gradients of a 2-layer tanh MLP's energy, F = sum_b [1/2|x1 - mu1|^2 + CE(W2 x1 + b2, y)] / B."""
    W1, b1 = model.layers[0].weight.detach().clone(), model.layers[0].bias.detach().clone()
    W2, b2 = model.layers[1].weight.detach().clone(), model.layers[1].bias.detach().clone()
    x0, y = batch["pixel_values"], batch["labels"]
    B = x0.shape[0]
    x1 = torch.tanh(x0 @ W1.T + b1)  # feedforward initialisation

    def grads(x1):
        mu1 = torch.tanh(x0 @ W1.T + b1)
        e1 = x1 - mu1
        d = (x1 @ W2.T + b2).softmax(-1) - torch.nn.functional.one_hot(y, W2.shape[0])
        gx1 = e1 + d @ W2  # per-sample dF/dx1
        delta = -e1 * (1 - mu1**2)
        return gx1, (d.T @ x1 / B, d.sum(0) / B, delta.T @ x0 / B, delta.sum(0) / B)

    for t in range(steps):
        gx1, (gW2, gb2, gW1, gb1) = grads(x1)
        if ipc:
            W2, b2, W1, b1 = W2 - lr * gW2, b2 - lr * gb2, W1 - lr * gW1, b1 - lr * gb1
        x1 = x1 - gamma * gx1
    if not ipc:
        _, (gW2, gb2, gW1, gb1) = grads(x1)
        W2, b2, W1, b1 = W2 - lr * gW2, b2 - lr * gb2, W1 - lr * gW1, b1 - lr * gb1
    return [W1, b1, W2, b2]


@pytest.mark.parametrize("ipc", [True, False], ids=["ipc", "pc"])
def test_ipc_and_pc_follow_their_update_rules(ipc):
    torch.manual_seed(0)
    model = MLP(in_features=6, width=8, depth=2, classes=4)
    batch = _mlp_batch()
    expected = _manual(model, batch, steps=3, lr=0.05, gamma=0.3, ipc=ipc)
    algorithm = IPC(3, 0.3) if ipc else PC(3, 0.3)
    train_batch(model, batch, algorithm, torch.optim.SGD(model.parameters(), lr=0.05), Autograd(ALL_GAUSSIAN))
    for p, q in zip(model.parameters(), expected):
        assert torch.allclose(p, q, atol=1e-5)


def test_pc_discount_multiplies_inference_lr_when_energy_does_not_improve():
    pc = PC(4, 1.0, discount=0.9)
    lr = pc.start_batch()
    for t, energy in enumerate([5.0, 4.0, 4.5, 3.0, 3.5]):
        lr = pc.observe_energy(t, energy, lr)
    assert lr == 1.0 * 0.9 * 0.9  # two energies did not improve: 4.5 after 4.0, 3.5 after 3.0
    assert pc.start_batch() == 1.0


def _one_batch_changes(cfg_path: Path, **pc_overrides):
    cfg = load_config(cfg_path, [f"pc.{k}={v}" for k, v in pc_overrides.items()])
    torch.manual_seed(0)
    cls = PCLMForMaskedLM if cfg.task == "mlm" else PCLMForCausalLM
    # The shipped config's own network (its widths are PCLMConfig's defaults), not the tests' tiny model.
    model = cls(PCLMConfig(vocab_size=50, max_position_embeddings=16, **cfg.model))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    algorithm = build_algorithm(cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount)
    optim = torch.optim.AdamW(
        weight_groups(model), lr=cfg.train.lr, weight_decay=0.0
    )  # no decay: only gradients move weights
    train_batch(
        model,
        lm_batch(cfg.task, batch=4, length=10),
        algorithm,
        optim,
        Autograd(value_node_selector(cfg.pc.value_nodes)),
    )
    return {n for n, p in model.named_parameters() if torch.equal(p, before[n])}


@pytest.mark.parametrize("cfg_path", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_weight_learns_within_one_batch_with_shipped_configs(cfg_path):
    assert _one_batch_changes(cfg_path) == set()


def test_too_deep_placement_leaves_the_embeddings_untrained():
    """The negative control of the test above: 7 value nodes with the paper's CLM iPC T = 4."""
    unchanged = _one_batch_changes(Path(CONFIGS[0]).with_name("clm_ipc.yaml"), value_nodes="sublayers+scores")
    assert "pclm.word_embeddings.weight" in unchanged and "pclm.position_embeddings.weight" in unchanged


@pytest.mark.parametrize("algo", ["pc", "ipc"])
def test_batch_x_grads_equal_sample_x_grads_at_gamma_over_batch(algo):
    """pc.x_grads=batch moves x by the batch mean's gradient: exactly the per-sample convention with gamma / B."""
    model = tiny_lm("clm")
    twin, sample = copy.deepcopy(model), copy.deepcopy(model)
    batch = lm_batch("clm", batch=4, length=8)
    select = value_node_selector("out+scores")
    kw = {"discount": 0.9} if algo == "pc" else {}
    for m, gamma, x_grads in ((model, 0.4, "batch"), (twin, 0.1, "sample")):
        train_batch(
            m,
            batch,
            build_algorithm(algo, 4, gamma, x_grads=x_grads, **kw),
            torch.optim.SGD(m.parameters(), lr=0.5),
            Autograd(select),
        )
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    # and the two conventions do differ at the same gamma
    train_batch(
        sample,
        batch,
        build_algorithm(algo, 4, 0.4, **kw),
        torch.optim.SGD(sample.parameters(), lr=0.5),
        Autograd(select),
    )
    assert not torch.allclose(sample.lm_head.decoder.weight, model.lm_head.decoder.weight, atol=1e-6)


def test_unknown_x_grads_is_a_usage_error():
    with pytest.raises(UsageError, match="config key 'pc.x_grads' must be one of sample, batch, got 'mean'"):
        build_algorithm("ipc", 4, 0.5, x_grads="mean")
