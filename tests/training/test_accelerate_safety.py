"""Accelerate settings that would change PC's maths are refused before a run writes anything; trackers are
checked before training and get the hyperparameters as flat dotted keys.

Oracles: the exact one-line messages, the untouched output folder, and the run's own config."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from accelerate.utils import DistributedType

from pclm.cpu import cpu_has_bf16
from pclm.errors import UsageError
from pclm.training import tracking
from pclm.training.accelerate_checks import SLOW_BF16, check_accelerate_env, check_accelerator, flat_hparams
from tests.cli.test_train_lm import expect_usage_error
from tests.conftest import REPO, SCRIPT, TINY, child_env


def fake(mixed_precision="no", steps=1, kind=DistributedType.NO, device="cpu"):
    return SimpleNamespace(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=steps,
        distributed_type=kind,
        device=SimpleNamespace(type=device),
        is_main_process=True,
    )


@pytest.mark.parametrize("algo, uses_value_nodes", [("pc", True), ("ipc", True)])
def test_fp16_is_refused_for_value_nodes(algo, uses_value_nodes):
    with pytest.raises(UsageError, match=f"mixed precision fp16 is not supported with {algo}"):
        check_accelerator(fake("fp16"), algo, uses_value_nodes)
    check_accelerator(fake("bf16"), algo, uses_value_nodes)  # no loss scaler: allowed
    check_accelerator(fake("fp16"), "bp", False)  # BP's scaler unscales its own gradients


def test_cpu_bf16_flags_are_read_from_cpuinfo():
    """Oracle: /proc/cpuinfo excerpts of an AVX2-only AMD EPYC, a Sapphire Rapids Xeon and a Neoverse V1."""
    assert cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n") is False
    assert cpu_has_bf16("flags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_bf16\n") is True
    assert cpu_has_bf16("Features\t: fp asimd bf16 i8mm\n") is True
    assert cpu_has_bf16("model name\t: something\n") is None  # no flags listed: unknown, no warning


@pytest.mark.parametrize(
    "has_bf16, precision, device, warned",
    [
        (False, "bf16", "cpu", True),
        (True, "bf16", "cpu", False),
        (None, "bf16", "cpu", False),
        (False, "bf16", "cuda", False),
        (False, "no", "cpu", False),
    ],
)
def test_bf16_on_a_cpu_without_bf16_warns_once(monkeypatch, capsys, has_bf16, precision, device, warned):
    monkeypatch.setattr("pclm.training.accelerate_checks.cpu_has_bf16", lambda: has_bf16)
    check_accelerator(fake(precision, device=device), "ipc", True)
    assert capsys.readouterr().err == (SLOW_BF16 + "\n" if warned else "")


@pytest.mark.parametrize("algo, uses_value_nodes", [("bp", False), ("ipc", True)])
def test_gradient_accumulation_is_refused(algo, uses_value_nodes):
    with pytest.raises(UsageError, match="gradient_accumulation_steps=4 is not supported"):
        check_accelerator(fake(steps=4), algo, uses_value_nodes)


def test_deepspeed_is_refused(monkeypatch):
    with pytest.raises(UsageError, match="DeepSpeed is not supported"):
        check_accelerator(fake(kind=DistributedType.DEEPSPEED), "bp", False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(UsageError, match="DeepSpeed is not supported"):
        check_accelerate_env()


def test_fp16_ipc_run_exits_2_with_one_line_and_writes_nothing(tmp_path):
    """The whole path: `accelerate launch --mixed_precision fp16` sets this variable for the process."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--algo", "ipc", *TINY, "--output-dir", str(out)],
        cwd=REPO,
        env={**child_env(), "ACCELERATE_MIXED_PRECISION": "fp16"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: mixed precision fp16 is not supported with ipc: the loss scaler would multiply the value-node "
        "gradients dF/dx (use bf16 or no)"
    ]
    assert not out.exists()


def test_a_missing_tracker_package_is_one_error_line(capsys, tmp_path, monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    expect_usage_error(
        capsys,
        ["--algo", "bp", *TINY, "train.tracker=csv,wandb"],
        r"train\.tracker 'wandb' needs the 'wandb' package \(pip install wandb\)",
        tmp_path / "run",
    )


def test_several_trackers_at_once(tmp_path):
    trackers = tracking.build_tracker("csv,none", tmp_path)
    assert [t.name for t in trackers] == ["csv"]
    assert tracking.build_tracker("none", tmp_path) is None
    with pytest.raises(UsageError, match="unknown train.tracker 'nope'"):
        tracking.build_tracker("csv,nope", tmp_path)


def test_hyperparameters_are_flat_dotted_keys(bp_run):
    run, _, _ = bp_run
    logged = json.loads((run / "logs" / "hparams.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    assert logged["train.lr"] == cfg["train"]["lr"] and logged["pc.inference_steps"] == cfg["pc"]["inference_steps"]
    assert logged["seed"] == 7 and logged["train.betas"] == str(cfg["train"]["betas"])
    assert logged["data.data_dir"] == "None"  # text: trackers filter on scalars
    assert flat_hparams({"a": {"b": {"c": 1}}, "d": None}) == {"a.b.c": 1, "d": "None"}
