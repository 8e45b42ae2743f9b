"""scripts/bench_parallel.py's device handling: --device cuda without CUDA (exit 2, one line, nothing written),
--quick on cpu, the time budget, per-device defaults, and pclm.benchmarking.race's device barrier."""

import importlib.util
import json
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
    spec.loader.exec_module(module)
    return module


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("path", ["bp", "ipc_seq", "ipc_par"])
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
