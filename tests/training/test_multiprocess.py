"""scripts/train_lm.py itself under `accelerate launch --multi_gpu --num_processes 2` (torchrun; gloo on a CPU-only
machine): the ranks form one group, split the data, end with bit-identical weights and exit cleanly.

Oracles: the step count of a one-process run halved (each rank trains on half the batches), the SHA-256 of every
rank's final weights (recorded in metrics.json) against each other and against the checkpoint's
model.safetensors, and the exit code within a timeout (a teardown hang fails it). The default suite launches once
(about 15 s); `-m slow` launches 5 more times, since a teardown hang showed up about once in 6-10 launches before
the job freed its DDP model before destroying the gloo group."""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pclm.errors import UsageError
from pclm.training import processes
from pclm.training.processes import weights_digest
from tests.conftest import REPO, SCRIPT, TINY, child_env

ACCELERATE = Path(sys.executable).with_name("accelerate")
TRAIN_SIZE, BATCH = 300, 32
REPEATS = 5  # slow-marked launches, on top of the default suite's one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(output: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        str(_free_port()),
        str(SCRIPT),
        "--algo",
        "ipc",
        "--threads",
        "1",
        *TINY,
        "train.epochs=1",
        "pc.inference_steps=3",
        "pc.value_nodes=out",
        "--output-dir",
        str(output),
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=REPO, env={**child_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180
    )


def check_two_process_run(output: Path) -> None:
    done = launch_two(output)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["status"] == "completed"
    assert metrics["steps"] == math.ceil(TRAIN_SIZE / (2 * BATCH))  # 5: each rank took half of the 10 batches
    digests = metrics["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert digests[0] == weights_digest(load_file(output / "checkpoints" / "last" / "model.safetensors"))
    assert (output / "best" / "model.safetensors").is_file() and not (output / "checkpoints" / "last.new").exists()


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed")
def test_two_processes_train_one_model(tmp_path):
    check_two_process_run(tmp_path / "run")


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed")
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_two_processes_repeatedly_exit_cleanly(tmp_path, attempt):
    check_two_process_run(tmp_path / "run")


def test_ranks_that_form_no_group_are_refused(monkeypatch):
    class Alone:  # what Accelerate gives a launched rank that joined no group
        num_processes = 1

        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    monkeypatch.setattr(processes, "Accelerator", Alone)
    monkeypatch.setattr(processes, "_has_accelerator_device", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(
        UsageError,
        match=r"^2 processes were launched \(WORLD_SIZE=2\) but they did not form a "
        r"process group \(this process sees 1\); nothing was written$",
    ):
        processes.build_accelerator()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert processes.build_accelerator().kwargs == {"cpu": False}  # one process: the default device


def test_weights_digest_sees_every_byte():
    import torch

    state = {"a": torch.zeros(3), "b": torch.ones(2, dtype=torch.int64)}
    base = weights_digest(state)
    assert weights_digest(dict(reversed(state.items()))) == base  # order of the dict does not matter
    assert weights_digest({**state, "a": torch.tensor([0.0, 0.0, -0.0])}) != base  # one sign bit
    assert weights_digest({**state, "a": torch.zeros(1, 3)}) != base  # the shape
    assert weights_digest({"a": state["a"], "c": state["b"]}) != base  # a name


@pytest.mark.parametrize(
    "rank, master, pattern",
    [
        (
            "0",
            True,
            r"this process \(rank 0 of WORLD_SIZE=2\) waited 3 s for its group at 127\.0\.0\.1:\d+: rank 1 did "
            r"not join \(0 of the other 1 joined\); start every rank",
        ),
        (
            "1",
            True,
            r"this process \(rank 1 of WORLD_SIZE=2\) waited 3 s for its group at 127\.0\.0\.1:\d+: rank 0, "
            r"which holds the group at .*, did not answer; start every rank",
        ),
        (
            "0",
            False,
            r"WORLD_SIZE=2 asks for 2 processes but MASTER_ADDR is not set: start them with `accelerate launch --multi_gpu",
        ),
    ],
    ids=["rank 0 alone", "rank 1 alone", "no MASTER_ADDR"],
)
def test_a_rank_started_alone_fails_in_one_line(tmp_path, rank, master, pattern):
    # WORLD_SIZE=2 and no second process: the group's start gives up after PCLM_JOIN_TIMEOUT (default 120 s; torch's
    # own wait is 30 minutes) in one line naming the missing rank, and nothing is written
    env = {**child_env(), "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "RANK": rank, processes.JOIN_TIMEOUT_ENV: "3"}
    env.pop("MASTER_ADDR", None)
    if master:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    argv = ["--algo", "bp", "--threads", "1", *TINY, "train.max_steps=1", "--output-dir", tmp_path / "run"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, argv)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and re.match("error: " + pattern, lines[0]), done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed")
def test_num_processes_without_multi_gpu_is_refused(tmp_path):
    # Accelerate's simple launcher starts the script once whatever --num_processes says (no WORLD_SIZE): refused in
    # pclm's one line, naming the flag to add, before the run folder is made
    cmd = [str(ACCELERATE), "launch", "--num_processes", "2", "--main_process_port", str(_free_port()), str(SCRIPT)]
    argv = ["--algo", "bp", "--threads", "1", *TINY, "train.max_steps=1", "--output-dir", str(tmp_path / "run")]
    env = {**child_env(), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0, done.stderr[-3000:]  # accelerate launch turns pclm's 2 into 1
    assert errors == [
        "error: `accelerate launch --num_processes 2` started one process: without --multi_gpu it runs the script "
        "once; add --multi_gpu (on a CPU-only machine too: the 2 processes use gloo)"
    ], done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []
