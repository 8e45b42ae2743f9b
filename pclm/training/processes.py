"""The Accelerator of a training job, and the checks that several launched processes really train as one group."""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from ..errors import UsageError

__all__ = ["build_accelerator", "launched_processes", "weights_digest", "replica_digests", "end_processes"]


def launched_processes() -> int:
    """How many processes the launcher (torchrun, `accelerate launch`) started: WORLD_SIZE, 1 when unset."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise UsageError(f"WORLD_SIZE must be an integer, got '{os.environ['WORLD_SIZE']}'") from None


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
    accelerator = Accelerator(cpu=cpu, **kwargs)
    if world > 1 and accelerator.num_processes != world:
        raise UsageError(
            f"{world} processes were launched (WORLD_SIZE={world}) but they did not form a process "
            f"group (this process sees {accelerator.num_processes}); nothing was written"
        )
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
