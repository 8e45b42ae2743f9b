"""BP: one feedforward pass, backprop of the output loss, one weight update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Algorithm

__all__ = ["BP"]


@dataclass
class BP(Algorithm):
    no_decay_group: ClassVar[bool] = True  # BERT's: no weight decay on biases and layer-norm weights

    @property
    def steps(self) -> int:
        return 1

    @property
    def uses_value_nodes(self) -> bool:
        return False

    def updates_x(self, t: int) -> bool:
        return False

    def learning_groups(self, t: int, n_groups: int) -> list[int]:
        return list(range(n_groups))
