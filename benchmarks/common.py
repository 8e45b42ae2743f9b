"""Shared by the benchmark scripts: side-by-side timing (`race`: every competing path in one process, warmed up, then
called in turns so that slow drift of the machine hits all of them alike), and what every report records (the
command line, the CPU's name) and how it is written."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["command_line", "cpu_name", "race", "write_json"]


def race(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int, sync: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Warm every path up, then time them in turns (order alternating each round). Seconds per call.

    `sync`: for asynchronous devices, a barrier (e.g. `torch.cuda.synchronize`) called after the warm-up and right
    before each reading of the clock, so that each sample holds exactly its own call's device work. None (CPU):
    no barrier, the clock read around the call alone."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    if sync is not None:
        sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            if sync is not None:
                sync()
            t0 = time.perf_counter()
            steps[name]()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - t0)
    return times


def command_line(script: str, argv: list[str] | None) -> str:
    """The command a report records: `python benchmarks/<script> <arguments>` (argv None: this process's)."""
    return " ".join(["python", f"benchmarks/{script}", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


def cpu_name() -> str:
    """The CPU's model name, as lscpu shows it."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def write_json(path: Path, report: dict) -> None:
    """Replace `path` atomically, so that a run killed mid-write leaves the previous report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
