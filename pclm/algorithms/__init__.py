"""Update schedules over the same energy graph: bp, pc, ipc, zil."""

from __future__ import annotations

from ..errors import UsageError
from .base import Algorithm, Diverged, StepStats
from .bp import BP
from .cost import Cost
from .ipc import IPC
from .pc import PC
from .zil import ZIL

__all__ = [
    "Algorithm",
    "Diverged",
    "StepStats",
    "Cost",
    "BP",
    "PC",
    "IPC",
    "ZIL",
    "ALGORITHMS",
    "build_algorithm",
    "check_reach",
]

ALGORITHMS = {"bp": BP, "pc": PC, "ipc": IPC, "zil": ZIL}


X_GRADS = ("sample", "batch")


def build_algorithm(
    name: str,
    inference_steps: int,
    inference_lr: float,
    discount: float | None = None,
    n_layers: int | None = None,
    x_grads: str = "sample",
) -> Algorithm:
    """The schedule called `name`. Z-IL runs one step per weight layer (`n_layers`) with gamma = 1. `x_grads`:
    the inference step's convention (see `Algorithm`)."""
    if name not in ALGORITHMS:
        raise UsageError(f"unknown algorithm '{name}' (choose from {', '.join(ALGORITHMS)})")
    if x_grads not in X_GRADS:
        raise UsageError(f"config key 'pc.x_grads' must be one of {', '.join(X_GRADS)}, got {x_grads!r}")
    if name == "bp":
        return BP()
    if name == "pc":
        return PC(inference_steps, inference_lr, x_grads, discount)
    if name == "ipc":
        return IPC(inference_steps, inference_lr, x_grads)
    if n_layers is None:
        raise UsageError("zil runs on chain graphs only (the vision MLP); this model has no layer chain")
    return ZIL(n_layers, 1.0)


def check_reach(algorithm: Algorithm, name: str, depth: int, chain: str, steps_key: str) -> None:
    """UsageError when `algorithm` (called `name`) updates value nodes but its errors reach fewer than the `depth`
    value nodes on the model's longest chain (`chain` says which, `steps_key` names its inference steps): the weights
    below would never learn."""
    if algorithm.uses_value_nodes and depth > algorithm.reach:
        raise UsageError(
            f"{chain} puts {depth} value nodes on a chain but {name} with {steps_key}={algorithm.inference_steps} "
            f"reaches only {algorithm.reach}: the lowest weights would never learn"
        )
