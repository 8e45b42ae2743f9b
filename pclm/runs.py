"""Run folders seen from outside: the statuses a run can be in, the one writer and the one reader of a run's
metrics.json, and launching one training run per folder for the multi-seed runner, the plan runner and the grid search
(pclm.cli.run_seeds, run_plan, sweep: `pclm-run seeds|plan|sweep`) in its own process, started or resumed.

A training job (`pclm.training.job.run_job`, for the tasks `pclm.training.lm` and `pclm.training.vision`) writes one of
the WRITTEN_STATUSES into metrics.json; `read_metrics` and `status_after_launch` add the READER_STATUSES for a folder that
holds no readable result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import USAGE_EXIT, USAGE_MARKER_ENV, UsageError
from .folders import find_checkpoint, write_atomic

__all__ = [
    "format_override",
    "format_value",
    "RUNNING",
    "COMPLETED",
    "EARLY_STOPPED",
    "MAX_STEPS",
    "DIVERGED",
    "INTERRUPTED",
    "MISSING",
    "UNREADABLE",
    "CRASHED",
    "WRITTEN_STATUSES",
    "READER_STATUSES",
    "USABLE_STATUSES",
    "FINAL_STATUSES",
    "METRICS_FILE",
    "write_metrics",
    "read_metrics",
    "run_status",
    "status_after_launch",
    "split_passthrough",
    "default_launcher",
    "launch_train",
    "check_launcher",
    "check_folder_name",
    "report_divergence",
    "parse_seeds",
]

# Written by a training job into metrics.json:
RUNNING = "running"  # training: written after every epoch until the run ends (also left by a run killed mid-way)
COMPLETED = "completed"  # trained all train.epochs epochs
EARLY_STOPPED = "early_stopped"  # stopped after train.patience epochs without a better dev score
MAX_STEPS = "max_steps"  # stopped after train.max_steps mini-batches
DIVERGED = "diverged"  # stopped at a NaN/inf energy or dev score; the last good model, if any, is kept
INTERRUPTED = "interrupted"  # stopped by Ctrl-C (SIGINT); --resume continues from the last checkpoint
# Given by a reader, never written:
MISSING = "missing"  # no metrics.json: not started, still in its first epoch, or killed before the end of it
UNREADABLE = "unreadable"  # a metrics.json that is not a run's metrics (not JSON, not an object, no known status)
CRASHED = "crashed"  # ended without a final status: its process exited (a launcher's verdict) or a report found it so

WRITTEN_STATUSES = (RUNNING, COMPLETED, EARLY_STOPPED, MAX_STEPS, DIVERGED, INTERRUPTED)
READER_STATUSES = (MISSING, UNREADABLE, CRASHED)
USABLE_STATUSES = (COMPLETED, EARLY_STOPPED, MAX_STEPS)  # final, with scores to report and average
FINAL_STATUSES = (*USABLE_STATUSES, DIVERGED)  # the run trains no further: a launcher skips it on a re-run

METRICS_FILE = "metrics.json"
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_lm.py"


def write_metrics(run: Path, status: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Write `run`/metrics.json, {"status": status, **fields}, whole (a reader or a kill sees the old file or the new
    one, never a part); returns what was written. ValueError on a status a job does not write."""
    if status not in WRITTEN_STATUSES:
        raise ValueError(f"a run's status is one of {', '.join(WRITTEN_STATUSES)}, not '{status}'")
    if "status" in fields:
        raise ValueError("the status is given on its own, not among the fields")
    metrics = {"status": status, **fields}
    write_atomic(Path(run) / METRICS_FILE, json.dumps(metrics, indent=1))
    return metrics


def read_metrics(run: Path) -> dict[str, Any]:
    """The content of `run`/metrics.json, whose "status" is one of WRITTEN_STATUSES; {"status": MISSING} when there is
    no such file (or no such folder), {"status": UNREADABLE, "error": why} when it is not a run's metrics."""
    path = Path(run) / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {"status": MISSING}
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        return {"status": UNREADABLE, "error": f"{type(err).__name__}: {err}"}
    if not isinstance(metrics, dict):
        return {"status": UNREADABLE, "error": f"not a JSON object but {type(metrics).__name__}"}
    if metrics.get("status") not in WRITTEN_STATUSES:
        return {"status": UNREADABLE, "error": f"unknown status {metrics.get('status')!r}"}
    return metrics


def run_status(run: Path) -> str:
    """The status of a run folder: its metrics.json's, or MISSING / UNREADABLE (see `read_metrics`)."""
    return read_metrics(run)["status"]


def status_after_launch(run: Path) -> str:
    """The status of a run whose training process has just ended, whatever its exit code: the final status in its
    metrics.json, else CRASHED (a process that ends leaves a final status unless it died)."""
    status = run_status(run)
    return status if status in FINAL_STATUSES else CRASHED


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


def format_value(value: Any) -> str:
    """A grid or fixed value as an override's text that the config reader (YAML) reads back as `value`: null,
    true / false and flow lists for those values, the plain text otherwise."""
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return str(value)


def format_override(key: str, value: Any) -> str:
    """`key=value` for a training script's command line (`format_value`)."""
    return f"{key}={format_value(value)}"


def default_launcher() -> str:
    return str(Path(sys.executable).with_name("accelerate")) + " launch"


def check_launcher(launcher: str) -> None:
    """UsageError unless the launcher's first word is a command this machine can run."""
    import shutil

    words = launcher.split()
    if not words or shutil.which(words[0]) is None:
        raise UsageError(
            f"--launcher '{launcher}': '{words[0] if words else ''}' is not a command this machine can run"
        )


def refuse_bad_launcher(launcher: str) -> bool:
    """True, after printing check_launcher's one error line, when the launcher cannot run on this machine."""
    from .errors import report_usage_error

    try:
        check_launcher(launcher)
    except UsageError as err:
        report_usage_error(err)
        return True
    return False


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
    if metrics.get("previous_run_restored"):
        kept = f"the finished run it was to replace is back in {output} (untouched)"
    elif metrics.get("best_model"):
        kept = f"last good model kept in {metrics['best_model']}"
    else:
        kept = "before the first epoch ended, so no model was kept"
    where = "" if metrics.get("previous_run_restored") else f", metrics in {output / 'metrics.json'}"
    print(f"error: training diverged (NaN/inf energy); {kept}{where}", file=sys.stderr)
    return 1


MAX_SEEDS = 10_000  # more seeds than anyone runs: a bigger list is a typo, refused before it fills memory
SEED_LIMIT = 2**32  # numpy's seeds (accelerate's set_seed) are 32-bit


def parse_seeds(text: str) -> list[int]:
    """ "0-3,7" -> [0, 1, 2, 3, 7]; ValueError on anything else (a descending range, a repeat, a negative seed, a seed
    of 2**32 or more, more than MAX_SEEDS seeds)."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"'{part}' is not a seed (0, 1, ...) or a range of seeds (0-4)")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"range '{part}' runs backwards")
        if last >= SEED_LIMIT:
            raise ValueError(f"seed {last} is too large (seeds are below 2**32 = {SEED_LIMIT})")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS:,} seeds asked ('{text}')")
        seeds += list(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError("a seed is listed twice")
    return seeds
