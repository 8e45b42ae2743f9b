"""Shared fixtures: the tokenizer, tiny run settings, and the CLI (`scripts/train_lm.py`) in-process or as a child."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_lm.py"

# A model and corpus small enough for a run of a few seconds on 2 CPU cores: 300 training sentences in batches of
# 32 (10 batches per epoch, the last one of 12), 60 dev and 100 test sentences.
TINY = [
    "model.hidden_size=32",
    "model.intermediate_size=64",
    "data.train_size=300",
    "data.dev_size=60",
    "data.test_size=100",
    "data.max_length=32",
    "train.batch_size=32",
    "train.eval_batch_size=64",
    "train.tracker=none",
]
# The run of the `bp_run` fixture: `seed=3` in the overrides and `--seed 7` on the command line (the flag must win).
BP_RUN_ARGS = [
    "--task",
    "mlm",
    "--algo",
    "bp",
    "--seed",
    "7",
    "--threads",
    "1",
    *TINY,
    "train.epochs=2",
    "seed=3",
    "train.tracker=csv",
    "train.log_every=4",
]


def _load_script():
    spec = importlib.util.spec_from_file_location("train_lm_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SCRIPT_MODULE = None


def _script():
    global _SCRIPT_MODULE
    if _SCRIPT_MODULE is None:
        _SCRIPT_MODULE = _load_script()
    return _SCRIPT_MODULE


def run_main(argv: list[str]) -> int:
    """`scripts/train_lm.py`'s main(argv), in this process (no start-up cost)."""
    return _script().main([str(a) for a in argv])


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def start_cli(argv: list[str], log: Path) -> subprocess.Popen:
    """`python scripts/train_lm.py argv` as a child process, its output in `log` (a pipe could fill and block it)."""
    out = log.open("w")
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, argv)], cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT
    )


def run_cli(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, argv)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests run whenever a CUDA device is present and are skipped, with the reason, otherwise."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="gpu: no CUDA device (torch.cuda.is_available() is False)")
        for item in gpu:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(REPO / "tokenizer"))


@pytest.fixture(scope="session")
def bp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int]:
    """One finished 2-epoch masked-LM BP run of `BP_RUN_ARGS` through the CLI, in-process, logging with the csv
    tracker: (run folder, metrics.json, exit code)."""
    run = tmp_path_factory.mktemp("bp_run") / "run"
    code = run_main([*BP_RUN_ARGS, "--output-dir", run])
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    return run, metrics, code


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids contention on a busy 2-core machine (10x here); denormals flushed as in the
    scripts."""
    import torch

    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
