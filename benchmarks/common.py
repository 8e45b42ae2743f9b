"""Side-by-side timing for the benchmark scripts (scripts/bench_*.py): every competing path in one process,
warmed up, then called in turns so that slow drift of the machine hits all of them alike."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["race"]


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
