"""Launching one training run per folder, for the multi-seed runner and the grid search (scripts/run_seeds.py,
scripts/sweep.py): what counts as finished, and how a run is started or resumed in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["FINAL_STATUSES", "run_status", "split_passthrough", "default_launcher", "launch_train"]

FINAL_STATUSES = frozenset({"completed", "early_stopped", "max_steps", "diverged"})
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_lm.py"


def run_status(run: Path) -> str | None:
    """The status in a run folder's metrics.json, or None when there is none (not started, or no metrics yet)."""
    try:
        return json.loads((run / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """(own arguments, arguments after `--`), the latter passed on to train_lm.py."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def default_launcher() -> str:
    return str(Path(sys.executable).with_name("accelerate")) + " launch"


def launch_train(launcher: str, run: Path, args: list[str], script: Path = TRAIN_SCRIPT) -> int:
    """Run `script` (train_lm.py, or train_vision.py, which takes the same flags) into `run` in its own process:
    resumed when it has checkpoints, started afresh otherwise. Returns the exit code (2 = bad input, the same for
    every run)."""
    start = ["--resume"] if (run / "checkpoints").is_dir() else ["--overwrite"]
    cmd = [*launcher.split(), str(script), "--output-dir", str(run), *start, *args]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)
