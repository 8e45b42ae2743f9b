"""Experiment trackers: the built-in CSV tracker, and the check of `train.tracker` made before a run starts.

`train.tracker` is "csv" (this module, no extra dependency), "none", or any tracker Accelerate knows
(tensorboard, wandb, ...), or several joined by commas ("csv,tensorboard"). A tracker whose package is missing
is an error before the run starts (Accelerate would drop it, and every other tracker, with a warning)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker
from accelerate.utils import LoggerType

from ..errors import UsageError

__all__ = ["CSVTracker", "TRACKERS", "build_tracker"]

TRACKERS = ("csv", "none", *(t for t in LoggerType.list() if t != "all"))
# the package each Accelerate tracker imports, where it is not the tracker's own name
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "comet_ml": ("comet_ml",)}


class CSVTracker(GeneralTracker):
    """Appends `step,name,value` rows to `<logging_dir>/<project>/metrics.csv` and the run's hyperparameters to
    `hparams.json` beside it. Files are created on the first write, so building the tracker writes nothing. A
    resumed run appends: rows logged between the checkpoint and the kill appear twice, with the same steps."""

    name = "csv"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, logging_dir: str | Path, project: str = "logs") -> None:
        super().__init__()
        self.dir = Path(logging_dir) / project

    @property
    def tracker(self) -> Path:
        return self.dir / "metrics.csv"

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "hparams.json").write_text(json.dumps(values, indent=1, default=str))

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        new = not self.tracker.exists()
        with self.tracker.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "name", "value"])
            writer.writerows([step, k, v] for k, v in values.items())


def build_tracker(name: str, logging_dir: Path) -> list[str | GeneralTracker] | None:
    """What to pass as `Accelerator(log_with=...)` for `train.tracker=name` (one name or several joined by
    commas); UsageError for an unknown name or a tracker whose package is not installed."""
    names = [n.strip() for n in str(name).split(",")]
    for n in names:
        if n not in TRACKERS:
            raise UsageError(f"unknown train.tracker '{n}' (choose from {', '.join(TRACKERS)})")
        if n not in ("csv", "none") and not any(importlib.util.find_spec(pkg) for pkg in _PACKAGES.get(n, (n,))):
            raise UsageError(
                f"train.tracker '{n}' needs the '{_PACKAGES.get(n, (n,))[0]}' package "
                f"(pip install {_PACKAGES.get(n, (n,))[0]}), or use train.tracker=csv"
            )
    trackers = [CSVTracker(logging_dir) if n == "csv" else n for n in names if n != "none"]
    return trackers or None
