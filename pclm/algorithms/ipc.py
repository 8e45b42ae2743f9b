"""iPC (Alg. 1): at each of T steps, the value nodes and the weights both move, from the same gradients."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Algorithm

__all__ = ["IPC"]


@dataclass
class IPC(Algorithm):
    def updates_x(self, t: int) -> bool:
        return True

    def learning_groups(self, t: int, n_groups: int) -> list[int]:
        return list(range(n_groups))
