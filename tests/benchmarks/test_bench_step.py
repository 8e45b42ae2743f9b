"""benchmarks/bench_step.py: the two readouts it races give the same gradients, the pc section's table and JSON hold
the ratios of the times it took, and a retired section (hygiene, memory, compile) is refused in one line."""

from __future__ import annotations

import copy
import json
from statistics import median

import pytest
import torch

from benchmarks import bench_step

pytestmark = pytest.mark.usefixtures("one_thread")


def _gradients(model, step) -> dict[str, torch.Tensor]:
    """Each weight's gradient in one call of `step`, as autograd accumulates it (before the optimiser steps)."""
    seen = {}
    hooks = [
        p.register_post_accumulate_grad_hook(lambda p, name=name: seen.__setitem__(name, p.grad.clone()))
        for name, p in model.named_parameters()
    ]
    step()
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("task", ["mlm", "clm"])
def test_full_readout_gives_the_fused_readouts_gradients(task):
    """readout="full" (autograd through the full logits) and the fused readout are the same energy: the same BP
    gradient of every weight."""
    torch.manual_seed(0)
    batch = bench_step.make_batch(task, 2, 8, source="random")
    fused = bench_step.pclm_model(task, "bp", 8)
    full = copy.deepcopy(fused)
    step_fused, _ = bench_step.pclm_step(fused, batch, task, "bp", bf16=False)
    step_full, _ = bench_step.pclm_step(full, batch, task, "bp", bf16=False, readout="full")
    expected, got = _gradients(full, step_full), _gradients(fused, step_fused)
    assert set(got) == set(expected) == {name for name, _ in fused.named_parameters()}
    for name, g in got.items():
        torch.testing.assert_close(g, expected[name], rtol=1e-4, atol=1e-7)


def test_pc_section_reports_the_ratios_of_its_times(tmp_path, capsys):
    js = tmp_path / "step.json"
    argv = "--sections pc --batch 2 --seq 8 --batches random --repeats 2 --warmup 0 --threads 1".split()
    assert bench_step.main([*argv, "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    assert report["command"] == f"python benchmarks/bench_step.py {' '.join(argv)} --json {js}"
    rows = report["pc"]
    assert [(r["task"], r["algo"], r["overrides"]) for r in rows] == [
        (task, algo, overrides)
        for task in ("mlm", "clm")
        for algo, overrides in (("ipc", []), ("pc", []), ("ipc", ["pc.value_nodes=none"]))
    ]
    out = capsys.readouterr().out
    for r in rows:
        assert len(r["call_s"]) == len(r["bp_s"]) == 2
        assert r["call_over_bp"] == pytest.approx(median(r["call_s"]) / median(r["bp_s"]), rel=1e-12)
        assert r["per_eval_over_bp"] == pytest.approx(r["call_over_bp"] / r["steps"], rel=1e-12)
        assert f"{r['per_eval_over_bp']:16.2f}x {r['per_eval_over_bp_min']:5.2f}x {r['call_over_bp']:7.2f}x" in out


@pytest.mark.parametrize("retired", ["hygiene", "memory", "compile"])
def test_a_retired_section_is_one_error_line(capsys, retired):
    assert bench_step.main(["--sections", f"pc,{retired}"]) == 2
    assert capsys.readouterr().err == f"error: bad arguments (unknown section {retired})\n"
