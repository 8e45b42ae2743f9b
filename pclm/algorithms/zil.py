"""Z-IL (Alg. 3), for chain graphs: gamma = 1 and the weights of layer l (its distance from the output) learn only
at step t = l. With feedforward initialisation its weight updates equal backprop's (Song et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Algorithm

__all__ = ["ZIL"]


@dataclass
class ZIL(Algorithm):
    inference_lr: float = 1.0

    def __post_init__(self) -> None:
        if self.inference_lr != 1.0:
            raise ValueError("Z-IL needs inference_lr = 1")

    @property
    def steps(self) -> int:
        return self.inference_steps  # set to the number of weight layers L by build_algorithm

    def updates_x(self, t: int) -> bool:
        return True

    def learning_groups(self, t: int, n_groups: int) -> list[int]:
        return [t] if t < n_groups else []
