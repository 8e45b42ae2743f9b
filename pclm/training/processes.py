"""The Accelerator of a training job, and the checks that several launched processes really train as one group."""

from __future__ import annotations

import gc
import hashlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, gather_object
from torch.distributed import distributed_c10d

from ..errors import UsageError

__all__ = [
    "build_accelerator",
    "launched_processes",
    "join_timeout",
    "check_launch",
    "JOIN_TIMEOUT_ENV",
    "weights_digest",
    "replica_digests",
    "end_processes",
]

# How long the launched processes may take to meet and form their group: a rank started alone (WORLD_SIZE=2 and no
# second process) fails then, in one line, instead of waiting for torch's 30 minutes. Set by the launcher's caller,
# like WORLD_SIZE; the group's collectives keep torch's own timeout.
JOIN_TIMEOUT_ENV = "PCLM_JOIN_TIMEOUT"
JOIN_TIMEOUT = 120.0


def launched_processes() -> int:
    """How many processes the launcher (torchrun, `accelerate launch`) started: WORLD_SIZE, 1 when unset."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise UsageError(f"WORLD_SIZE must be an integer, got '{os.environ['WORLD_SIZE']}'") from None


def join_timeout() -> float:
    """Seconds the processes of a launch may take to form their group: PCLM_JOIN_TIMEOUT, else 120."""
    text = os.environ.get(JOIN_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(text) if text else JOIN_TIMEOUT
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UsageError(f"{JOIN_TIMEOUT_ENV} must be a number of seconds > 0, got '{text}'")
    return seconds


def _no_group(world: int, seconds: float, err: BaseException) -> UsageError:
    """The one line for launched processes that did not form their group: who is missing, and what to do."""
    rank = os.environ.get("RANK", "0")
    where = f"{os.environ.get('MASTER_ADDR', '(MASTER_ADDR unset)')}:{os.environ.get('MASTER_PORT', '29500')}"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "MASTER_ADDR" in text:
        return UsageError(
            f"WORLD_SIZE={world} asks for {world} processes but MASTER_ADDR is not set: start them with "
            f"`accelerate launch --multi_gpu --num_processes {world}` (gloo on a CPU-only machine) or torchrun, which "
            "sets it"
        )
    if rank == "0":
        others = ", ".join(str(r) for r in range(1, world)) if world <= 9 else f"1 to {world - 1}"
        joined = re.search(r"(\d+)/(\d+) clients joined", text)
        count = f" ({int(joined[1]) - 1} of the other {world - 1} joined)" if joined else ""
        missing = f"rank{'s' * (world > 2)} {others} did not join{count}"
    else:
        missing = f"rank 0, which holds the group at {where}, did not answer"
    return UsageError(
        f"this process (rank {rank} of WORLD_SIZE={world}) waited {seconds:g} s for its group at {where}: {missing}; "
        f"start every rank (accelerate launch --num_processes {world}, torchrun --nproc-per-node {world}), or set "
        f"{JOIN_TIMEOUT_ENV} to wait longer"
    )


class _held_stderr:
    """Hold what is written to file descriptor 2 (torch's C++ log too) while the group forms; written out at the end
    unless `drop` was called."""

    def __enter__(self) -> _held_stderr:
        sys.stderr.flush()
        self.file, self.keep = tempfile.TemporaryFile(), True
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def drop(self) -> None:
        self.keep = False

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        if self.keep:
            self.file.seek(0)
            sys.stderr.write(self.file.read().decode(errors="replace"))
            sys.stderr.flush()
        self.file.close()


def _launcher_processes() -> int | None:
    """The `--num_processes N` of the `accelerate launch` that started this process as its only child (Accelerate's
    simple launcher: no WORLD_SIZE, no --multi_gpu), read from the parent's command line; None when there is none."""
    if "ACCELERATE_DYNAMO_BACKEND" not in os.environ or "WORLD_SIZE" in os.environ:
        return None  # not started by `accelerate launch`, or started as one of a group
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None  # not Linux: no check
    if "launch" not in words:
        return None
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None
    for i, word in enumerate(words[words.index("launch") + 1 :], words.index("launch") + 1):
        if script and os.path.basename(word) == script:
            break  # the script's own arguments follow
        name, eq, value = word.partition("=")
        if name in ("--num_processes", "--num-processes"):
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
            return int(value) if value.isdigit() else None
    return None


def check_launch() -> None:
    """Refuse `accelerate launch --num_processes N` (N > 1) without --multi_gpu: Accelerate then starts the script
    once, and the run would train as one process while the user counts on N."""
    asked = _launcher_processes()
    if asked is not None and asked > 1:
        raise UsageError(
            f"`accelerate launch --num_processes {asked}` started one process: without --multi_gpu it runs the "
            f"script once; add --multi_gpu (on a CPU-only machine too: the {asked} processes use gloo)"
        )


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):  # torch >= 2.6: CUDA, XPU, MPS, ...
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def build_accelerator(**kwargs: Any) -> Accelerator:
    """`Accelerator(**kwargs)` that forms a process group whenever several processes were launched.

    Accelerate 1.x joins launched processes into a group only on a GPU-like device, or on the CPU (gloo) when asked
    with `cpu=True`; without it, each rank of `accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine
    trains alone. So several processes and no accelerator device mean `cpu=True`. A launch whose ranks still did
    not form a group is refused (UsageError) before anything is written."""
    world = launched_processes()
    cpu = world > 1 and not _has_accelerator_device()
    if world == 1:
        check_launch()
        return Accelerator(cpu=cpu, **kwargs)
    seconds = join_timeout()
    handlers = [*kwargs.pop("kwargs_handlers", []), InitProcessGroupKwargs(timeout=timedelta(seconds=seconds))]
    with _held_stderr() as held:
        try:
            accelerator = Accelerator(cpu=cpu, kwargs_handlers=handlers, **kwargs)
        except (RuntimeError, ValueError) as err:  # torch's DistStoreError / DistNetworkError; accelerate's MASTER_ADDR
            held.drop()  # torch's C++ log of every failed connection and its stack: the line below says it all
            raise _no_group(world, seconds, err) from None
    if accelerator.num_processes != world:
        raise UsageError(
            f"{world} processes were launched (WORLD_SIZE={world}) but they did not form a process "
            f"group (this process sees {accelerator.num_processes}); nothing was written"
        )
    # the short timeout was for meeting: collectives wait as long as torch's default (a rank may tokenise or write a
    # checkpoint for minutes while the others wait at a barrier)
    default = 600 if accelerator.state.backend == "nccl" else 1800
    distributed_c10d._set_pg_timeout(timedelta(seconds=default))
    return accelerator


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict (or a safetensors file's tensors): names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def replica_digests(accelerator: Accelerator, model: torch.nn.Module) -> list[str]:
    """`weights_digest` of every process's copy of `model`, in rank order (one entry when there is one process)."""
    return list(gather_object([weights_digest(accelerator.unwrap_model(model).state_dict())]))


def end_processes(accelerator: Accelerator) -> None:
    """End a job: drop Accelerate's references to the prepared model, optimiser and loaders (the caller has dropped
    its own), then meet and destroy the process group (`end_training`). Destroying the group while a
    DistributedDataParallel model is still alive, or leaving it to exit-time destructors, made a gloo rank abort or
    hang now and then (tests/training/ddp_worker.py)."""
    accelerator.free_memory()
    gc.collect()
    accelerator.wait_for_everyone()
    accelerator.end_training()
