"""Shared fixtures: the tokenizer, tiny run settings, the CLI (`scripts/train_lm.py`) in-process or as a child, and
tiny language models and batches for the energy-graph tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pclm import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_lm.py"


def command_files() -> list[Path]:
    """Every file run as a command: the product's (pclm/cli, scripts/ shims), benchmarks, experiment drivers, tools."""
    found = [
        REPO.glob(p) for p in ("pclm/cli/*.py", "scripts/*.py", "benchmarks/*.py", "experiments/*/*.py", "tools/*.py")
    ]
    return sorted(p for paths in found for p in paths if p.name not in ("__init__.py", "common.py"))


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


def run_main(argv: list[str]) -> int:
    """`pclm.cli.train_lm.main(argv)` (what `scripts/train_lm.py` runs), in this process (no start-up cost)."""
    from pclm.cli.train_lm import main

    return main([str(a) for a in argv])


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


# The one tiny language model of the tests: two blocks of width 16 with two heads (so head splitting is exercised),
# 50 tokens (ids 0-4 special, as in the repository tokenizer), 16 positions. A test overrides a size only where its
# oracle needs it (the tokenizer's vocabulary, a longer input), and says so.
TINY_LM = {
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "intermediate_size": 32,
    "num_attention_heads": 2,
    "max_position_embeddings": 16,
}


def tiny_config(**overrides) -> PCLMConfig:
    """`PCLMConfig` of `TINY_LM`, any field replaced by `overrides`."""
    return PCLMConfig(**{**TINY_LM, **overrides})


def tiny_lm(task: str = "mlm", seed: int = 0, **overrides) -> PCLMForMaskedLM | PCLMForCausalLM:
    """A PCLM of `tiny_config(**overrides)` with weights seeded by `seed`, masked (`mlm`) or causal (`clm`)."""
    if task not in ("mlm", "clm"):
        raise ValueError(f"task must be 'mlm' or 'clm', got {task!r}")
    torch.manual_seed(seed)
    return (PCLMForMaskedLM if task == "mlm" else PCLMForCausalLM)(tiny_config(**overrides))


def lm_batch(
    task: str,
    batch: int = 3,
    length: int = 7,
    vocab: int = TINY_LM["vocab_size"],
    seed: int = 1,
    pad_last: int = 0,
    lengths: tuple[int, ...] | None = None,
):
    """Random sentences, right-padded with id 0: the last `pad_last` positions of the last sentence, or sentence
    i padded after `lengths[i]` tokens (variable-length sentences; `batch` is then len(lengths))."""
    g = torch.Generator().manual_seed(seed)
    batch = len(lengths) if lengths is not None else batch
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    if pad_last:
        ids[-1, -pad_last:] = 0
        mask[-1, -pad_last:] = 0
    for i, n in enumerate(lengths or ()):
        ids[i, n:] = 0
        mask[i, n:] = 0
    if task == "clm":
        labels = ids.masked_fill(mask == 0, -100)
    else:
        pick = torch.rand(batch, length, generator=g) < 0.4
        pick[:, 1] = True
        labels = torch.where(pick & (mask == 1), ids, torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests run whenever a CUDA device is present and are skipped, with the reason, otherwise."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
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
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["mlm", "clm"])
def task(request):
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _flush_denormals():
    """PC value dynamics produce denormal floats, 10-40x slower on CPU; the scripts flush them too."""
    torch.set_flush_denormal(True)
