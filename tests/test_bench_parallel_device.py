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
