"""benchmarks/bench_parallel.py's device handling: --device cuda without CUDA (exit 2, one line, nothing written),
--quick on cpu, the time budget, per-device defaults, benchmarks.common.race's device barrier, the compiled and
closed-form backends, and (on a GPU) --device cuda end to end."""

import copy
import functools
import json
from pathlib import Path

import pytest
import torch

import pclm.training.backends
from benchmarks import bench_parallel
from benchmarks.common import race

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench():
    return bench_parallel


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
    # the committed reports' names: reports/bench_parallel_{compiled,fused}.json
    assert bench.parse_args(["--backend", "compiled"]).json == Path("reports/bench_parallel_compiled.json")
    assert bench.parse_args(["--backend", "closed_form"]).png == Path("reports/bench_parallel_fused.png")


def test_quick_on_cpu(bench, tmp_path, capsys):
    js, png = tmp_path / "q.json", tmp_path / "q.png"
    assert bench.main(["--quick", "--threads", "1", "--json", str(js), "--png", str(png)]) == 0
    report = json.loads(js.read_text())
    assert report["device"] == "cpu" and report["complete"] and len(report["rows"]) == report["cells_planned"] == 8
    assert report["torch"] == torch.__version__ and "--quick" in report["command"]
    _assert_rows_consistent(bench, report, capsys.readouterr().out, js, png)
    assert [(r["depth"], r["width"], r["batch"]) for r in report["rows"]] == [
        (d, w, b) for d in (2, 8) for w in (32, 128) for b in (1, 16)
    ]
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and not (tmp_path / "q.json.tmp").exists()


def _assert_rows_consistent(bench, report, out, js, png):
    """Every row times every path, its ratios are the ratios of its medians (and minima), and the table printed
    shows those medians and ratios; the run ends by naming both outputs (`png` None: no heatmap expected)."""
    assert report["paths"] == list(bench.PATHS)
    lines = out.splitlines()
    for r in report["rows"]:
        med, low = r["median_s"], r["min_s"]
        assert set(med) == set(low) == set(bench.PATHS)
        assert r["ipc_seq/bp"] == pytest.approx(med["ipc_seq"] / med["bp"], rel=1e-12)
        assert r["ipc_par/bp"] == pytest.approx(med["ipc_par"] / med["bp"], rel=1e-12)
        assert r["ipc_par/ipc_seq"] == pytest.approx(med["ipc_par"] / med["ipc_seq"], rel=1e-12)
        assert r["min ipc_par/bp"] == pytest.approx(low["ipc_par"] / low["bp"], rel=1e-12)
        assert all(low[k] <= med[k] for k in bench.PATHS)
        head = f"{r['depth']:6d} {r['width']:6d} {r['batch']:6d} | "
        (line,) = [x for x in lines if x.startswith(head)]
        ms = " ".join(f"{med[k] * 1e3:8.3f}" for k in bench.PATHS)
        ratios = " ".join(f"{r[k]:7.2f}" for k in ("ipc_seq/bp", "ipc_par/bp", "ipc_par/ipc_seq"))
        assert line.startswith(f"{head}{ms} | {ratios} | {r['smms']['bp']}/{r['smms']['ipc']} | ")
    if png is not None:  # None: no matplotlib, no heatmap
        assert lines[-1] == f"wrote {js} and {png}"


def test_budget_stops_after_a_cell_and_keeps_it(bench, tmp_path):
    js = tmp_path / "b.json"
    argv = "--depths 2 --widths 16 --batches 1 2 --repeats 1 --warmup 0 --threads 1 --max-seconds 1e-9".split()
    assert bench.main([*argv, "--json", str(js), "--png", str(tmp_path / "b.png")]) == 0
    report = json.loads(js.read_text())
    assert len(report["rows"]) == 1 and report["stopped_by_budget"] and not report["complete"]
    assert (report["rows"][0]["batch"], report["cells_planned"]) == (1, 2)


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


# ------------------------------------------------------------------------------ --backend compiled, closed_form
def _small(bench, width=8, depth=3, batch=4):
    from pclm.vision import MLP, StackedMLP

    torch.manual_seed(0)
    mlp = MLP(in_features=width, width=width, depth=depth + 1, classes=bench.CLASSES)
    return mlp, StackedMLP.from_mlp(mlp), bench.make_batch(width, batch)


@pytest.mark.parametrize("stacked", [False, True], ids=["ipc_seq", "ipc_par"])
def test_compiled_ipc_step_matches_eager(bench, monkeypatch, stacked):
    """The iPC step with the compiled backend (traced with aot_eager here) makes the same updates."""
    _compile_with_aot_eager(monkeypatch)
    mlp, stack, batch = _small(bench)
    model = stack if stacked else mlp
    ref = copy.deepcopy(model)
    eager = bench.ipc_step(ref, batch, lr=0.5, inference_lr=0.2)
    compiled = bench.ipc_step(model, batch, lr=0.5, inference_lr=0.2, backend="compiled")
    for _ in range(3):
        eager()
        compiled()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _compile_with_aot_eager(monkeypatch):
    """The compiled backend traced by aot_eager: the same graph, no C++ compiler (seconds, not minutes)."""
    compiled = functools.partial(pclm.training.backends.Compiled, torch_backend="aot_eager")
    monkeypatch.setattr(pclm.training.backends, "Compiled", compiled)
    torch._dynamo.reset()


def _run_backend_with_eager_bp(bench, tmp_path, capsys, backend):
    """`--backend backend` on one cell: every path timed and printed, plus autograd's BP step in the same race, with
    ipc_par's ratio to it printed and recorded as the ratio of the two medians."""
    js, png = tmp_path / "m.json", tmp_path / "m.png"
    argv = ["--backend", backend, *"--depths 2 --widths 8 --batches 1 --repeats 2 --warmup 1 --threads 1".split()]
    assert bench.main([*argv, "--json", str(js), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    report = json.loads(js.read_text())
    (row,) = report["rows"]
    _assert_rows_consistent(bench, report, out, js, png)
    assert row["ipc_par/bp_eager"] == pytest.approx(row["median_s"]["ipc_par"] / row["bp_eager_median_s"], rel=1e-12)
    assert report["backend"] == backend
    assert (
        f"  eager bp {row['bp_eager_median_s'] * 1e3:.3f} ms: {backend} ipc_par / eager bp = "
        f"{row['ipc_par/bp_eager']:.2f}" in out.splitlines()
    )
    return report


def test_compiled_backend_also_times_eager_bp(bench, tmp_path, monkeypatch, capsys):
    """--backend compiled races compiled bp / ipc_seq / ipc_par and the eager BP step, and reports ipc_par against
    both."""
    _compile_with_aot_eager(monkeypatch)
    _run_backend_with_eager_bp(bench, tmp_path, capsys, "compiled")


@pytest.mark.parametrize("stacked", [False, True], ids=["ipc_seq", "ipc_par"])
def test_closed_form_steps_match_autograd(bench, stacked):
    """--backend closed_form: the closed-form iPC step (ClosedFormMLP) and BP step make autograd's updates."""
    mlp, stack, batch = _small(bench)
    model = stack if stacked else mlp
    ref = copy.deepcopy(model)
    eager = bench.ipc_step(ref, batch, lr=0.5, inference_lr=0.2)
    closed = bench.ipc_step(model, batch, lr=0.5, inference_lr=0.2, backend="closed_form")
    for _ in range(3):  # both ran the batch's t = 0 step untimed when they were built
        eager()
        closed()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    if not stacked:
        bp_ref, bp_model = copy.deepcopy(mlp), copy.deepcopy(mlp)
        eager_bp, closed_bp = (
            bench.bp_step(bp_ref, batch, lr=0.5),
            bench.bp_step(bp_model, batch, lr=0.5, backend="closed_form"),
        )
        for _ in range(3):
            eager_bp()
            closed_bp()
        for p, q in zip(bp_model.parameters(), bp_ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_closed_form_races_every_path_and_eager_bp(bench, tmp_path, capsys):
    _run_backend_with_eager_bp(bench, tmp_path, capsys, "closed_form")


@pytest.mark.gpu
def test_cuda_end_to_end(bench, tmp_path, capsys):
    """--device cuda on a real GPU: every path timed on the device, the table and JSON agree, the PNG is drawn."""
    js, png = tmp_path / "g.json", tmp_path / "g.png"
    argv = "--device cuda --depths 2 --widths 16 --batches 1 4 --repeats 3 --warmup 1".split()
    assert bench.main([*argv, "--json", str(js), "--png", str(png)]) == 0
    report = json.loads(js.read_text())
    assert report["device"] == "cuda" and report["device_name"] == torch.cuda.get_device_name()
    assert report["complete"] and len(report["rows"]) == 2
    out = capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # a GPU machine without matplotlib: the JSON holds every number
        _assert_rows_consistent(bench, report, out, js, None)
        assert out.splitlines()[-1].startswith("no heatmap (") and not png.exists()
        return
    _assert_rows_consistent(bench, report, out, js, png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
