"""scripts/bench_parallel.py's device handling: --device cuda without CUDA (exit 2, one line, nothing written),
--quick on cpu, the time budget, per-device defaults, pclm.benchmarking.race's device barrier, and the --cuda-graphs
self-check (replays against eager steps; on CPU with stand-ins for the capture)."""

import argparse
import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from pclm.benchmarking import race

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_parallel.py"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_parallel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_parallel"] = module  # torch.compile (--compile) looks traced functions' modules up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_parallel", None)


def test_cuda_unavailable_exits_2_with_one_line_and_writes_nothing(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)  # default outputs would land in tmp_path/reports
    assert bench.main(["--device", "cuda"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "CUDA is not available" in err
    assert list(tmp_path.iterdir()) == []


def test_defaults_per_device(bench):
    cpu, cuda = bench.parse_args([]), bench.parse_args(["--device", "cuda"])
    assert (cpu.json, cpu.png) == (Path("reports/bench_parallel.json"), Path("reports/bench_parallel.png"))
    assert (cpu.repeats, cpu.warmup, cpu.max_seconds) == (7, 2, None)
    assert cuda.json == Path("reports/bench_parallel_cuda.json") and cuda.png.name == "bench_parallel_cuda.png"
    assert cuda.repeats > cpu.repeats and cuda.max_seconds == 150
    assert bench.parse_args(["--device", "cuda", "--repeats", "3", "--max-seconds", "0"]).repeats == 3


def test_quick_on_cpu(bench, tmp_path, capsys):
    js, png = tmp_path / "q.json", tmp_path / "q.png"
    assert bench.main(["--quick", "--threads", "1", "--json", str(js), "--png", str(png)]) == 0
    report = json.loads(js.read_text())
    assert report["device"] == "cpu" and report["complete"] and len(report["rows"]) == report["cells_planned"] == 8
    assert report["torch"] == torch.__version__ and "--quick" in report["command"]
    assert png.stat().st_size > 0 and not (tmp_path / "q.json.tmp").exists()
    assert "wrote" in capsys.readouterr().out


def test_budget_stops_after_a_cell_and_keeps_it(bench, tmp_path):
    js = tmp_path / "b.json"
    argv = ["--depths", "2", "--widths", "16", "--batches", "1", "2", "--repeats", "1", "--warmup", "0",
            "--threads", "1", "--max-seconds", "1e-9", "--json", str(js), "--png", str(tmp_path / "b.png")]
    assert bench.main(argv) == 0
    report = json.loads(js.read_text())
    assert len(report["rows"]) == 1 and report["stopped_by_budget"] and not report["complete"]


def test_race_sync_brackets_every_timed_call():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = race(steps, repeats=3, warmup=1, sync=lambda: calls.append("sync"))
    assert calls[:3] == ["a", "b", "sync"]  # warm-up, then one barrier
    assert calls[3:9] == ["sync", "a", "sync", "sync", "b", "sync"]
    assert calls.count("sync") == 1 + 2 * 3 * 2 and {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    calls.clear()
    race(steps, repeats=2, warmup=0)  # no sync: the calls alone
    assert calls == ["a", "b", "b", "a"]


# ------------------------------------------------------------------------------------------------ --cuda-graphs
def _small(bench, width=8, depth=3, batch=4):
    from pclm.vision import MLP, StackedMLP

    torch.manual_seed(0)
    mlp = MLP(in_features=width, width=width, depth=depth + 1, classes=bench.CLASSES)
    return mlp, StackedMLP.from_mlp(mlp), bench.make_batch(width, batch)


def _assert_same_params(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=1e-6, atol=1e-7, msg=name)


def test_bp_graph_step_matches_train_batch_with_bp(bench):
    """The capturable BP step, run eagerly on CPU, moves the weights exactly as train_batch with BP and SGD."""
    import copy

    mlp, _, batch = _small(bench)
    ref, start = copy.deepcopy(mlp), copy.deepcopy(mlp)
    eager, graph_step = bench.bp_step(ref, batch, lr=0.5), bench.bp_graph_step(mlp, batch, lr=0.5)
    for _ in range(3):
        eager()
        graph_step()
    _assert_same_params(mlp, ref)
    assert any(not torch.equal(p, q) for p, q in zip(mlp.parameters(), start.parameters()))  # it did move
    assert all(torch.count_nonzero(p.grad) == 0 for p in mlp.parameters())  # grads kept, zeroed in place


@pytest.mark.parametrize("stacked", [False, True], ids=["ipc_seq", "ipc_par"])
def test_ipc_graph_step_matches_ipc_step(bench, stacked):
    """The capturable iPC step, run eagerly on CPU, gives the same weight updates as the existing ipc_step over
    several steps (from the second on, the weight update depends on the value nodes' update)."""
    import copy

    mlp, stack, batch = _small(bench)
    model = stack if stacked else mlp
    ref, start = copy.deepcopy(model), copy.deepcopy(model)
    eager = bench.ipc_step(ref, batch, lr=0.5, inference_lr=0.2)
    graph_step = bench.ipc_graph_step(model, batch, lr=0.5, inference_lr=0.2)
    for _ in range(4):
        eager()
        graph_step()
    _assert_same_params(model, ref)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), start.parameters()))
    assert all(torch.count_nonzero(x.grad) == 0 for x in graph_step.values)
    assert graph_step.graph.node_energies == {}  # no autograd graph kept alive between steps (CUDA-graph capture)


def test_ipc_graph_steps_agree_between_mlp_and_stacked(bench):
    mlp, stack, batch = _small(bench, depth=4)
    a = bench.ipc_graph_step(mlp, batch, lr=0.5, inference_lr=0.2)
    b = bench.ipc_graph_step(stack, batch, lr=0.5, inference_lr=0.2)
    for _ in range(3):
        a()
        b()
    torch.testing.assert_close(torch.stack(a.values), b.values[0], rtol=1e-5, atol=1e-6)
    _assert_same_params(stack.to_mlp(), mlp)


@pytest.mark.parametrize("argv", [["--cuda-graphs"], ["--cuda-graphs", "--quick", "--device", "cpu"]])
def test_cuda_graphs_without_cuda_device_exits_2_and_writes_nothing(bench, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert bench.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--cuda-graphs needs --device cuda" in err
    assert list(tmp_path.iterdir()) == []


def test_cuda_graphs_with_cuda_unavailable_exits_2(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--device", "cuda", "--cuda-graphs"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_cuda_graphs_defaults(bench):
    args = bench.parse_args(["--device", "cuda", "--cuda-graphs"])
    assert args.json == Path("reports/bench_parallel_cuda_graphs.json")
    assert args.png == Path("reports/bench_parallel_cuda_graphs.png") and args.cuda_graphs
    assert not bench.parse_args(["--device", "cuda"]).cuda_graphs


_IPC_REPLAY_KNOWN_BAD = pytest.mark.xfail(
    reason="failed on an H200 (torch 2.11): iPC graph replays did not reproduce eager steps; the benchmark now "
           "checks every captured path and does not time one that disagrees", strict=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("path", ["bp", pytest.param("ipc_seq", marks=_IPC_REPLAY_KNOWN_BAD),
                                  pytest.param("ipc_par", marks=_IPC_REPLAY_KNOWN_BAD)])
def test_graph_replay_matches_eager_on_cuda(bench, path):
    """Captured and replayed, each step gives what its eager calls give (capture: 3 eager warm-up calls, the captured
    call is not executed, then each replay is one step)."""
    import copy

    from pclm.vision import MLP, StackedMLP

    torch.manual_seed(0)
    with torch.device("cuda"):
        mlp = MLP(64, 64, 9, 10)
        model = StackedMLP.from_mlp(mlp) if path == "ipc_par" else mlp
    batch = bench.make_batch(64, 16, device="cuda")
    make = (lambda m: bench.bp_graph_step(m, batch, 0.05)) if path == "bp" else \
        (lambda m: bench.ipc_graph_step(m, batch, 0.05, 0.1))
    eager_model, graph_model = copy.deepcopy(model), copy.deepcopy(model)
    eager, replay = make(eager_model), bench.capture(make(graph_model))
    for _ in range(8):
        eager()
    for _ in range(5):
        replay()
    torch.cuda.synchronize()
    _assert_same_params(graph_model, eager_model)


# ------------------------------------------------------------------------- --cuda-graphs self-check (CPU stand-ins)
def _eager_capture(step, warmup=3):
    """CPU stand-in for `capture`: the warm-up calls, then the "replay" is the step itself (always agrees)."""
    for _ in range(warmup):
        step()
    return step


def _corrupting_capture(step, warmup=3):
    """CPU stand-in for a bad capture of the iPC steps (as seen on the H200): each "replay" of a step with value
    nodes also moves them by 0.01; steps without value nodes (bp) replay correctly."""
    for _ in range(warmup):
        step()
    values = getattr(step, "values", None)
    if not values:
        return step

    def bad_replay():
        step()
        with torch.no_grad():
            for x in values:
                x.add_(0.01)

    return bad_replay


def test_compare_steps_passes_when_steps_agree(bench):
    a, b = [torch.ones(3, 4)], [torch.ones(3, 4)]

    def step_a():
        a[0].mul_(0.5).add_(1)

    def step_b():
        b[0].mul_(0.5).add_(1)

    check = bench.compare_steps(step_a, a, step_b, b, steps=3)
    assert check["graph_check"] == "passed" and check["max_abs_diff"] == 0.0 and check["steps"] == 3
    assert (check["rtol"], check["atol"]) == (1e-4, 1e-5)
    assert torch.equal(a[0], torch.full((3, 4), 1.875))  # both ran their 3 steps


def test_compare_steps_fails_on_a_noisy_replay_with_its_difference(bench):
    a, b = [torch.zeros(5), torch.ones(2, 2)], [torch.zeros(5), torch.ones(2, 2)]
    g = torch.Generator().manual_seed(0)
    noise = []

    def eager():
        a[0].add_(1)

    def noisy():
        b[0].add_(1)
        n = 1e-3 * torch.randn(5, generator=g)
        noise.append(n)
        b[0].add_(n)

    check = bench.compare_steps(eager, a, noisy, b, steps=3)
    assert check["graph_check"] == "failed"
    expected = float(torch.stack(noise).sum(0).abs().max())
    assert check["max_abs_diff"] == pytest.approx(expected, rel=1e-3) and check["max_abs_diff"] > 1e-5


def test_compare_steps_tolerance_and_non_finite(bench):
    a, b = [torch.ones(4)], [torch.ones(4) + 5e-6]  # within atol 1e-5 + rtol 1e-4: float noise passes
    check = bench.compare_steps(lambda: None, a, lambda: None, b)
    assert check["graph_check"] == "passed" and 0 < check["max_abs_diff"] < 1e-5
    nan = bench.compare_steps(lambda: None, [torch.ones(2)], lambda: None, [torch.tensor([1.0, float("nan")])])
    assert nan == {**nan, "graph_check": "failed", "max_abs_diff": None}
    shapes = bench.compare_steps(lambda: None, [torch.ones(2)], lambda: None, [torch.ones(3)])
    assert shapes["graph_check"] == "failed" and shapes["max_abs_diff"] is None
    count = bench.compare_steps(lambda: None, [torch.ones(2)], lambda: None, [])
    assert count["graph_check"] == "failed"


@pytest.mark.parametrize("path", ["bp", "ipc_seq", "ipc_par"])
def test_captured_and_checked_with_eager_stand_in_passes(bench, monkeypatch, path):
    """The real steps, the module's check: with a capture that replays eagerly, every path passes with difference 0
    (the reference copy starts from the same model; the value nodes are built from equal copies)."""
    monkeypatch.setattr(bench, "capture", _eager_capture)
    mlp, stack, batch = _small(bench)
    model = stack if path == "ipc_par" else mlp
    start = copy.deepcopy(model)
    if path == "bp":
        make = lambda m, b: bench.bp_graph_step(m, b, 0.5)  # noqa: E731
    else:
        make = lambda m, b: bench.ipc_graph_step(m, b, 0.5, 0.2)  # noqa: E731
    replay, step, check = bench.captured_and_checked(make, model, batch)
    assert check["graph_check"] == "passed" and check["max_abs_diff"] == 0.0
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), start.parameters()))  # it moved
    assert replay is step and (path == "bp") == (getattr(step, "values", None) is None)


def test_captured_and_checked_catches_a_bad_ipc_capture(bench, monkeypatch):
    monkeypatch.setattr(bench, "capture", _corrupting_capture)
    _, stack, batch = _small(bench)
    _, _, check = bench.captured_and_checked(lambda m, b: bench.ipc_graph_step(m, b, 0.5, 0.2), stack, batch)
    assert check["graph_check"] == "failed" and check["max_abs_diff"] >= 0.01


def _cpu_args(bench, **extra):
    args = bench.parse_args(["--depths", "2", "--widths", "8", "--batches", "2", "--repeats", "2", "--warmup", "1",
                             "--threads", "1"])
    return argparse.Namespace(**{**vars(args), "cuda_graphs": True, **extra})


def test_bench_one_does_not_time_a_path_that_fails_its_check(bench, monkeypatch):
    monkeypatch.setattr(bench, "capture", _corrupting_capture)
    timed = []
    real_race = bench.race
    monkeypatch.setattr(bench, "race", lambda steps, *a, **k: timed.append(sorted(steps)) or real_race(steps, *a, **k))
    r = bench.bench_one(2, 8, 2, _cpu_args(bench))
    assert timed == [["bp"]]  # only the path whose replay agreed was timed
    assert r["invalid"] == ["ipc_seq", "ipc_par"]
    assert r["graph_check"]["bp"]["graph_check"] == "passed" and r["graph_check"]["bp"]["max_abs_diff"] == 0.0
    for k in ("ipc_seq", "ipc_par"):
        assert r["graph_check"][k]["graph_check"] == "failed" and r["graph_check"][k]["max_abs_diff"] >= 0.01
        assert r["median_s"][k] is None and r["min_s"][k] is None
    assert r["median_s"]["bp"] > 0
    assert all(r[k] is None for k in ("ipc_seq/bp", "ipc_par/bp", "ipc_par/ipc_seq", "min ipc_par/bp"))


def test_bench_one_with_agreeing_graphs_times_everything(bench, monkeypatch):
    monkeypatch.setattr(bench, "capture", _eager_capture)
    r = bench.bench_one(2, 8, 2, _cpu_args(bench))
    assert r["invalid"] == [] and all(c["graph_check"] == "passed" for c in r["graph_check"].values())
    assert all(r["median_s"][k] > 0 for k in bench.PATHS) and r["ipc_par/bp"] > 0
    plain = bench.bench_one(2, 8, 2, _cpu_args(bench, cuda_graphs=False))
    assert "graph_check" not in plain and "invalid" not in plain


def test_cli_json_and_heatmap_with_a_failed_path(bench, tmp_path, monkeypatch, capsys):
    """--device cuda --cuda-graphs end to end with CPU stand-ins (CUDA "available", models on the CPU, a capture
    that corrupts iPC): the table says invalid, the JSON holds nulls and the failed checks, the heatmap is drawn."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench, "setup_device", lambda args: ({"stand-in": True}, "CPU stand-in"))
    monkeypatch.setattr(bench, "capture", _corrupting_capture)
    real_bench_one = bench.bench_one
    monkeypatch.setattr(bench, "bench_one", lambda d, w, b, args: real_bench_one(
        d, w, b, argparse.Namespace(**{**vars(args), "device": "cpu"})))
    js, png = tmp_path / "g.json", tmp_path / "g.png"
    argv = ["--device", "cuda", "--cuda-graphs", "--depths", "2", "--widths", "8", "16", "--batches", "2",
            "--repeats", "2", "--warmup", "1", "--json", str(js), "--png", str(png)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("invalid") >= 4 and "not timed" in out
    report = json.loads(js.read_text())
    assert report["cuda_graphs"] and report["complete"] and len(report["rows"]) == 2
    assert report["graph_check"]["steps"] == 3 and report["graph_check"]["rtol"] == 1e-4
    for r in report["rows"]:
        assert r["graph_check"]["bp"]["graph_check"] == "passed"
        assert r["graph_check"]["ipc_par"]["graph_check"] == "failed" and r["graph_check"]["ipc_par"]["max_abs_diff"]
        assert r["median_s"]["ipc_seq"] is None and r["ipc_par/bp"] is None and r["median_s"]["bp"] > 0
    assert png.stat().st_size > 0


@pytest.mark.parametrize("stacked", [False, True], ids=["ipc_seq", "ipc_par"])
def test_compiled_ipc_step_matches_eager(bench, monkeypatch, stacked):
    """--compile: the iPC step with gradients from CompiledEnergy (traced with aot_eager here) makes the same updates."""
    import functools

    monkeypatch.setattr(bench, "CompiledEnergy", functools.partial(bench.CompiledEnergy, backend="aot_eager"))
    torch._dynamo.reset()
    mlp, stack, batch = _small(bench)
    model = stack if stacked else mlp
    ref = copy.deepcopy(model)
    eager = bench.ipc_step(ref, batch, lr=0.5, inference_lr=0.2)
    compiled = bench.ipc_step(model, batch, lr=0.5, inference_lr=0.2, compile=True)
    for _ in range(3):
        eager()
        compiled()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_compile_and_cuda_graphs_exclude_each_other(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--compile", "--cuda-graphs", "--device", "cuda"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_compile_mode_also_times_eager_bp(bench, tmp_path, monkeypatch):
    """--compile races compiled bp / ipc_seq / ipc_par and the eager BP step, and reports ipc_par against both."""
    import functools

    monkeypatch.setattr(bench, "CompiledEnergy", functools.partial(bench.CompiledEnergy, backend="aot_eager"))
    out = tmp_path / "c.json"
    assert bench.main(["--compile", "--depths", "2", "--widths", "8", "--batches", "1", "--repeats", "2",
                       "--warmup", "1", "--threads", "1", "--json", str(out), "--png", str(tmp_path / "c.png")]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert report["compiled"] is True and row["bp_eager_median_s"] > 0
    assert row["ipc_par/bp_eager"] == pytest.approx(row["median_s"]["ipc_par"] / row["bp_eager_median_s"], rel=1e-3)


@pytest.mark.parametrize("stacked", [False, True], ids=["ipc_seq", "ipc_par"])
def test_fused_steps_match_autograd(bench, stacked):
    """--fused: the closed-form iPC step (FusedMLP) and BP step make autograd's updates."""
    mlp, stack, batch = _small(bench)
    model = stack if stacked else mlp
    ref = copy.deepcopy(model)
    eager = bench.ipc_step(ref, batch, lr=0.5, inference_lr=0.2)
    fused = bench.fused_ipc_step(model, batch, lr=0.5, inference_lr=0.2)
    eager()  # the eager step's first evaluation is the fused path's untimed t = 0 step
    for _ in range(3):
        eager()
        fused()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    if not stacked:
        bp_ref, bp_model = copy.deepcopy(mlp), copy.deepcopy(mlp)
        eager_bp, fused_bp = bench.bp_step(bp_ref, batch, lr=0.5), bench.fused_bp_step(bp_model, batch, lr=0.5)
        for _ in range(3):
            eager_bp()
            fused_bp()
        for p, q in zip(bp_model.parameters(), bp_ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_fused_mode_races_every_path_and_eager_bp(bench, tmp_path):
    out = tmp_path / "f.json"
    assert bench.main(["--fused", "--depths", "2", "--widths", "8", "--batches", "1", "--repeats", "2",
                       "--warmup", "1", "--threads", "1", "--json", str(out), "--png", str(tmp_path / "f.png")]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert report["fused"] is True and row["bp_eager_median_s"] > 0 and row["median_s"]["ipc_par"] > 0
