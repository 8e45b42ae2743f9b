"""Two processes under `accelerate launch`: weights stay identical across ranks after iPC and PC steps.

On a CPU-only machine accelerate 1.15 starts a single process for `--cpu --num_processes 2` (its multi-CPU
launcher needs an MPI hostfile); `--multi_gpu --num_processes 2` starts two torchrun processes, which use the
gloo backend on the CPU. That is the command the README documents."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.skipif(
    shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
    reason="accelerate CLI not installed",
)
def test_two_process_weights_identical(tmp_path):
    out = tmp_path / "result.json"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "29517",
        str(WORKER),
        str(out),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["num_processes"] == 2
    assert result["ranks_saw_different_batches"]
    assert result["moved"] > 0  # training did change the weights
    assert result["max_abs_diff"] == 0.0
