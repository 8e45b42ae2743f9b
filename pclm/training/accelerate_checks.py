"""Accelerate settings that would silently change predictive coding's maths, refused before a run writes anything,
and the run's hyperparameters as flat dotted keys for trackers.

* fp16: the loss scaler multiplies dF/dx by its scale (up to 65,536) and nothing unscales the value-node
  optimiser, so PC/iPC refuse it (bf16 needs no scaler and is allowed).
* gradient accumulation: `accelerator.backward` divides the energy by the number of steps (the value nodes would
  move that many times less) while the loop still steps the weights on every batch: refused for every algorithm;
  a larger `train.batch_size` is the supported way to average over more samples.
* DeepSpeed: its engine steps the weights inside backward, so PC's inference-only evaluations would update them.
* bf16 on a CPU without bf16 instructions: allowed, with one `warning:` line, because there it is far slower than
  fp32 (pclm.cpu.cpu_has_bf16)."""

from __future__ import annotations

import os
import sys
from typing import Any

from accelerate.utils import DistributedType

from ..cpu import cpu_has_bf16
from ..errors import UsageError

__all__ = ["check_accelerate_env", "check_accelerator", "flat_hparams"]

SLOW_BF16 = (
    "warning: bf16 autocast on a CPU without bf16 instructions (no avx512_bf16 / amx_bf16 in /proc/cpuinfo): "
    "its matmuls are emulated and run many times slower than fp32; drop --mixed_precision bf16 here"
)

_TRUE = {"1", "true", "yes", "on"}
_DEEPSPEED = (
    "DeepSpeed is not supported: its engine steps the weights inside backward, which PC's inference "
    "steps call without a weight update (use DDP or FSDP)"
)


def check_accelerate_env() -> None:
    """Before `Accelerator()`: DeepSpeed asked for by `accelerate launch` / `accelerate config`."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in _TRUE:
        raise UsageError(_DEEPSPEED)


def check_accelerator(accelerator, algo: str, uses_value_nodes: bool) -> None:
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise UsageError(_DEEPSPEED)
    if uses_value_nodes and accelerator.mixed_precision == "fp16":
        raise UsageError(
            f"mixed precision fp16 is not supported with {algo}: the loss scaler would multiply the "
            "value-node gradients dF/dx (use bf16 or no)"
        )
    if accelerator.mixed_precision == "bf16" and getattr(accelerator.device, "type", None) == "cpu":
        if cpu_has_bf16() is False and accelerator.is_main_process:
            print(SLOW_BF16, file=sys.stderr)
    if accelerator.gradient_accumulation_steps > 1:
        raise UsageError(
            f"gradient_accumulation_steps={accelerator.gradient_accumulation_steps} is not supported: "
            "the weights step on every batch (raise train.batch_size instead)"
        )


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}; values a tracker cannot filter on (None, lists) as text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out
