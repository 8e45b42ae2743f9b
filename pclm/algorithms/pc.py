"""PC (Alg. 2): T inference steps on the value nodes with the weights fixed, then one learning step."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Algorithm

__all__ = ["PC"]


@dataclass
class PC(Algorithm):
    discount: float | None = None  # multiply gamma by this whenever the energy did not improve

    @property
    def steps(self) -> int:
        return self.inference_steps + 1  # T inference steps, then the evaluation the weights learn from

    def updates_x(self, t: int) -> bool:
        return t < self.inference_steps

    def learning_groups(self, t: int, n_groups: int) -> list[int]:
        return list(range(n_groups)) if t == self.inference_steps else []

    def start_batch(self) -> float:
        self._best = float("inf")
        return self.inference_lr

    def observe_energy(self, t: int, energy: float, lr: float) -> float:
        if self.discount is not None and energy >= self._best:
            lr *= self.discount
        self._best = min(self._best, energy)
        return lr
