"""The fused, chunked readout + cross-entropy against the unfused oracle `cross_entropy(h @ W.T + b, targets)`:
values and gradients, alone and inside a whole BP / PC / iPC mini-batch of both language models."""

import copy

import pytest
import torch

from pclm.algorithms import build_algorithm
from pclm.models.value_nodes import value_node_selector
from pclm.pc import EnergyGraph, cross_entropy, linear_cross_entropy
from pclm.training.backends import Autograd
from pclm.training.step import train_batch
from tests.conftest import lm_batch, tiny_lm


def _inputs(n=37, c=8, v=29, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, c, generator=g, dtype=dtype).requires_grad_(True)
    w = (torch.randn(v, c, generator=g, dtype=dtype) * 0.5).requires_grad_(True)
    b = torch.randn(v, generator=g, dtype=dtype).requires_grad_(True)
    t = torch.randint(0, v, (n,), generator=g)
    t[::5] = -100  # ignored rows
    return h, w, b, t


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("chunk", [1, 7, 37, 512])
def test_value_and_gradients_equal_unfused(chunk):
    """Against the unfused loss in float64 (autograd through F.cross_entropy): float32 agreement."""
    h, w, b, t = _inputs()
    h64, w64, b64 = (x.detach().double().requires_grad_(True) for x in (h, w, b))
    ref = torch.nn.functional.cross_entropy(h64 @ w64.t() + b64, t, reduction="sum")
    fused = linear_cross_entropy(h, w, b, t, chunk_rows=chunk)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused.double(), ref, rtol=1e-6, atol=0)
    for got, want in zip(_grads(fused * 3.0, h, w, b), _grads(ref * 3.0, h64, w64, b64)):  # incoming grad != 1
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_ignored_rows_get_zero_gradient_and_no_bias():
    h, w, b, t = _inputs()
    fused = linear_cross_entropy(h, w, None, t, chunk_rows=4)
    ref = cross_entropy(h @ w.t(), t)
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    gh, gw = _grads(fused, h, w)
    assert gh[t == -100].abs().max() == 0
    torch.testing.assert_close(gw, _grads(ref, w)[0], rtol=1e-5, atol=1e-6)


def test_no_grad_and_inference_only_skip_weight_gradients():
    h, w, b, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, b, t), cross_entropy(h @ w.t() + b, t))
    loss = linear_cross_entropy(h, w, b, t, weight_grads=False)
    (gh,) = _grads(loss, h)  # the backward of an inference-only evaluation reads only the value nodes
    torch.testing.assert_close(gh, _grads(cross_entropy(h @ w.t() + b, t), h)[0], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_close_to_fp32():
    h, w, b, t = _inputs(n=64, c=32, v=101)
    ref = cross_entropy(h @ w.t() + b, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = linear_cross_entropy(h, w, b, t, chunk_rows=16)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, ref, rtol=2e-2, atol=0)
    gh, gw, gb = _grads(fused, h, w, b)
    assert gh.dtype == gw.dtype == torch.float32
    for got, want in zip((gh, gw, gb), _grads(ref, h, w, b)):
        assert (got - want).norm() < 0.03 * want.norm()


def _pattern(kind: str, n: int = 48, v: int = 29, seed: int = 0) -> torch.Tensor:
    """Targets (n,) with ignored rows: "padded" = 6 flattened sentences of 8 positions with variable lengths,
    shifted as the conditional LM shifts them (padding and each last position ignored); "gap" = rows 8..23 ignored
    (whole chunks without a target at chunk_rows 4 and 8); "all" = every row has one; "none" = no row has one."""
    t = torch.randint(0, v, (n,), generator=torch.Generator().manual_seed(seed))
    if kind == "padded":
        lengths = torch.tensor([8, 5, 1, 3, 7, 2])
        real = torch.arange(8)[None, :] < lengths[:, None] - 1  # position i predicts token i + 1 of the sentence
        t = t.masked_fill(~real.reshape(-1), -100)
    elif kind == "gap":
        t[8:24] = -100
    elif kind == "none":
        t[:] = -100
    return t


PATTERNS = ["padded", "gap", "all", "none"]


@pytest.mark.parametrize("chunk", [4, 8, 512])
@pytest.mark.parametrize("kind", PATTERNS)
def test_rows_without_target_equal_unfused(kind, chunk):
    """Variable-length padding, chunks without a target, and the all / none edge cases: the gathered readout
    against the full logits in float64 (value, dF/dh, dF/dW, dF/db), and dF/dh exactly zero on ignored rows."""
    h, w, b, _ = _inputs(n=48)
    t = _pattern(kind)
    h64, w64, b64 = (x.detach().double().requires_grad_(True) for x in (h, w, b))
    ref = torch.nn.functional.cross_entropy(h64 @ w64.t() + b64, t, reduction="sum")
    fused = linear_cross_entropy(h, w, b, t, chunk_rows=chunk)
    torch.testing.assert_close(fused.double(), ref, rtol=1e-6, atol=1e-9)
    got, want = _grads(fused * 3.0, h, w, b), _grads(ref * 3.0, h64, w64, b64)
    for name, g, r in zip(("dh", "dW", "db"), got, want):
        # float32 sums over up to 48 rows: the absolute slack scales with the gradient (dW reaches 19 here, and the
        # summation order, hence the last bits, differs between CPUs' kernels)
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-6 * max(1.0, r.abs().max().item()), msg=name)
    ignored = t == -100
    assert got[0][ignored].count_nonzero() == 0
    assert got[0][~ignored].ne(0).any(1).all()  # every row with a target gets a gradient


class _Unfused(EnergyGraph):
    fused_readout = False


BATCHES = {"pad_last": dict(batch=4, pad_last=3), "variable": dict(lengths=(9, 6, 2, 1, 4))}


@pytest.mark.parametrize("padding", list(BATCHES))
@pytest.mark.parametrize("algo", ["bp", "pc", "ipc"])
def test_training_batch_equals_unfused(task, algo, padding):
    """Two mini-batches of each algorithm: the fused readout moves every weight as the full logits do, also on
    variable-length sentences (a sentence of 1 token has no target at all). SGD, not AdamW: AdamW's normalisation
    turns the float noise of a weight whose gradient is still zero (the error has not reached it yet) into a
    full-size step, which would compare noise with noise."""
    model = tiny_lm(task, layer_norm=True)
    ref_model = copy.deepcopy(model)
    batch = lm_batch(task, length=9, **BATCHES[padding])
    select = value_node_selector("sublayers+scores") if algo != "bp" else (lambda name: None)
    for m, graph_cls in ((model, EnergyGraph), (ref_model, _Unfused)):
        algorithm = build_algorithm(algo, 3, 0.1, discount=0.9 if algo == "pc" else None)
        optim = torch.optim.SGD(m.parameters(), lr=0.5)
        backend = Autograd(select, new_graph=graph_cls)  # a fresh graph of this class per batch
        for _ in range(2):
            train_batch(m, batch, algorithm, optim, backend)
    moved = 0
    for (name, p), q, p0 in zip(model.named_parameters(), ref_model.parameters(), tiny_lm(task).parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
        moved += not torch.equal(p, p0)
    assert moved > 10  # the comparison is not vacuous: the weights did move


def test_training_graph_forms_no_logits_and_feedforward_does(task):
    model = tiny_lm(task)
    batch = lm_batch(task)
    out = model(**batch, nodes=EnergyGraph(lambda name: None, 3))
    assert out.logits is None and out.loss is not None
    ff = model(**batch)
    assert ff.logits is not None
    torch.testing.assert_close(ff.loss, out.loss, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_value_nodes_float32(task):
    """Under bf16 autocast the matmuls run in bf16, but every value node (and so its SGD step) is float32, and
    the energy stays close to the float32 energy."""
    model = tiny_lm(task)
    batch = lm_batch(task, batch=4, length=9)
    select = value_node_selector("sublayers+scores")
    ref = EnergyGraph(select, 4)
    model(**batch, nodes=ref)
    graph = EnergyGraph(select, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch, nodes=graph)
    assert graph.x and all(x.dtype == torch.float32 for x in graph.values())
    assert graph.energy().dtype == torch.float32
    torch.testing.assert_close(graph.energy(), ref.energy(), rtol=2e-2, atol=0)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_padded_evaluation_gradients_equal_unfused(task, bf16):
    """One energy evaluation on variable-length sentences with every value node moved off its prediction: dF/dW,
    dF/db and dF/dx of every value node (the last one is dF/dhidden of the readout) equal the full logits'."""
    model = tiny_lm(task)
    batch = lm_batch(task, length=9, lengths=(9, 6, 2, 1, 4))
    select = value_node_selector("sublayers+scores")
    g = torch.Generator().manual_seed(3)
    noise = None
    results = []
    for graph_cls in (EnergyGraph, _Unfused):
        graph = graph_cls(select, 5)
        model(**batch, nodes=graph)  # x = mu
        noise = noise or [0.3 * torch.randn(x.shape, generator=g) for x in graph.values()]
        with torch.no_grad():
            for x, n in zip(graph.values(), noise):
                x.add_(n)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(**batch, nodes=graph)
        names = [n for n, _ in model.named_parameters()] + [f"x:{k}" for k in graph.x]
        results.append(dict(zip(names, torch.autograd.grad(graph.energy(), [*model.parameters(), *graph.values()]))))
    fused, ref = results
    assert fused.keys() == ref.keys()
    for name in ref:
        if bf16:
            assert (fused[name] - ref[name]).norm() <= 0.03 * ref[name].norm() + 1e-6, name
        else:
            torch.testing.assert_close(fused[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    assert (
        ref["lm_head.decoder.weight"].norm() > 0
        and ref[f"x:blocks.{model.config.num_hidden_layers - 1}.out"].norm() > 0
    )
