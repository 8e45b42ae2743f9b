"""CPU hygiene for training and benchmarks, applied once at start-up by the scripts (never deep in the library).

* PC value dynamics produce denormal floats, which x86 CPUs compute slowly: flush them to zero.
* glibc returns the large logits buffer to the OS after every step and maps it again on the next; keep it (no mmap
  for big blocks, no trim). Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>.
* `accelerate launch` without a config file sets OMP_NUM_THREADS=1, which leaves the other cores idle:
  threads="auto" uses every core this process may run on, divided among the local processes.
(The measurements behind these choices are in docs/lab_notes.md.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

from .errors import UsageError

__all__ = ["configure_cpu"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _keep_malloc_arenas() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def configure_cpu(threads: int | str = "auto", local_processes: int = 1) -> dict[str, object]:
    """Flush denormals, keep malloc's arenas, set the intra-op thread count (`threads`: "auto", a positive integer
    or its digits; anything else is a `UsageError`). Returns what was applied."""
    if threads != "auto" and not (str(threads).isdigit() and int(threads) > 0):
        raise UsageError(f"--threads must be 'auto' or a positive integer, got '{threads}'")
    if threads == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // max(1, local_processes))
    torch.set_num_threads(int(threads))
    return {
        "flush_denormal": torch.set_flush_denormal(True),
        "malloc_tuned": _keep_malloc_arenas(),
        "threads": torch.get_num_threads(),
    }
