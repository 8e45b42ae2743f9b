"""Launching one training run per folder, for the multi-seed runner and the grid search (scripts/run_seeds.py,
scripts/sweep.py): what counts as finished, and how a run is started or resumed in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import USAGE_EXIT, USAGE_MARKER_ENV, UsageError
from .folders import find_checkpoint

__all__ = [
    "FINAL_STATUSES",
    "run_status",
    "split_passthrough",
    "default_launcher",
    "launch_train",
    "check_folder_name",
    "report_divergence",
    "parse_seeds",
]

FINAL_STATUSES = frozenset({"completed", "early_stopped", "max_steps", "diverged"})
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_lm.py"


def run_status(run: Path) -> str | None:
    """The status in a run folder's metrics.json, or None when there is none (not started, or no metrics yet)."""
    try:
        return json.loads((run / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def check_folder_name(name: str) -> str:
    """`name` when it is one plain folder name (no path separator, no '..', no NUL, at most 255 bytes), so a run
    named after grid values stays inside its --output-dir; UsageError otherwise."""
    bad = [c for c in ("/", "\\", os.sep, os.altsep or "/", "\0") if c in name]
    if bad or ".." in name or name in ("", ".") or len(name.encode()) > 255:
        raise UsageError(
            f"run folder name '{name}' is not a plain folder name (grid values may not hold '/', "
            "'\\', '..' or NUL, and a name has at most 255 bytes)"
        )
    return name


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """(own arguments, arguments after `--`), the latter passed on to train_lm.py."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def default_launcher() -> str:
    return str(Path(sys.executable).with_name("accelerate")) + " launch"


def launch_train(launcher: str, run: Path, args: list[str], script: Path = TRAIN_SCRIPT) -> int:
    """Run `script` (train_lm.py, or train_vision.py, which takes the same flags) into `run` in its own process:
    resumed when it has a complete checkpoint, started afresh otherwise (a run killed during its first checkpoint
    has only checkpoints/last.new, and starts again). Returns the exit code; 2 means, and only means, that the script
    refused its input (the same for every run), however the launcher passed the code on."""
    start = ["--resume"] if find_checkpoint(run) is not None else ["--overwrite"]
    cmd = [*launcher.split(), str(script), "--output-dir", str(run), *start, *args]
    print(" ".join(cmd), flush=True)
    # The script reports bad input in a file named by USAGE_MARKER_ENV as well as by its exit code, which a launcher
    # may change (accelerate launch turns 2 into 1).
    with tempfile.TemporaryDirectory(prefix="pclm-launch-") as tmp:
        marker = Path(tmp) / "usage_error"
        code = subprocess.call(cmd, env={**os.environ, USAGE_MARKER_ENV: str(marker)})
        return USAGE_EXIT if marker.exists() else code


def report_divergence(metrics: dict, output: Path) -> int:
    """A training script's ending for a diverged run: one `error:` line naming what was kept; returns exit code 1."""
    kept = (
        f"last good model kept in {metrics['best_model']}"
        if metrics.get("best_model")
        else "before the first epoch ended, so no model was kept"
    )
    print(f"error: training diverged (NaN/inf energy); {kept}, metrics in {output / 'metrics.json'}", file=sys.stderr)
    return 1


def parse_seeds(text: str) -> list[int]:
    """ "0-3,7" -> [0, 1, 2, 3, 7]; ValueError on anything else (a descending range, a repeat, a negative seed)."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"'{part}' is not a seed (0, 1, ...) or a range of seeds (0-4)")
        if dash and int(hi) < int(lo):
            raise ValueError(f"range '{part}' runs backwards")
        seeds += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    if len(set(seeds)) != len(seeds):
        raise ValueError("a seed is listed twice")
    return seeds
