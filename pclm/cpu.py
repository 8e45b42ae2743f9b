"""CPU hygiene for training and benchmarks, applied once at start-up by the scripts (never deep in the library).

* PC value dynamics produce denormal floats, which x86 CPUs compute slowly: flush them to zero.
* glibc returns the large logits buffer to the OS after every step and maps it again on the next; keep it (no mmap
  for big blocks, no trim). Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>.
* `accelerate launch` without a config file sets OMP_NUM_THREADS=1, which leaves the other cores idle:
  threads="auto" uses every core this process may run on, divided among the local processes.
* bf16 autocast is fast only where the CPU has bf16 instructions (x86: avx512_bf16 or amx_bf16; Arm: bf16); an
  AVX2-only CPU emulates them, and a bf16 matmul there runs tens of times slower than fp32: `cpu_has_bf16` says which.
(The measurements behind these choices are in docs/lab_notes.md and reports/lm_fidelity_ladder.md.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

from .errors import UsageError

__all__ = ["configure_cpu", "cpu_has_bf16"]

_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 /proc/cpuinfo "flags", Arm "Features"

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


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU lists bf16 instructions in /proc/cpuinfo (`cpuinfo`: that file's text); None where there is
    no such file (not Linux) or it lists no flags at all."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & _BF16_FLAGS) if flags else None
