"""An algorithm is an update schedule over one energy graph: for each of its `steps` energy evaluations on a
mini-batch it says whether the value nodes move and which weight groups are updated. The training loop runs
every algorithm the same way and never looks at its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .cost import Cost, schedule_cost

__all__ = ["Algorithm", "Diverged", "StepStats"]


@dataclass
class Algorithm:
    """Base schedule. `inference_steps` is T; `inference_lr` is gamma (SGD on the value nodes).

    `x_grads` is the inference step's convention. The energy is F = (sum over the batch) / B, so weight gradients
    are batch means. "sample": dF/dx is multiplied by B, so each sample's x moves by the gradient of its own
    energy whatever the batch size (pcx's convention). "batch": x moves by dF/dx itself, the gradient of the
    batch mean, so gamma acts B times smaller (what autograd gives when the energy is a plain batch mean)."""

    inference_steps: int = 1
    inference_lr: float = 0.0
    x_grads: str = "sample"
    # The weight optimiser's default parameter groups (pclm.training.groups): True gives BERT's no-decay group
    # (biases and layer-norm weights without weight decay, BP's default); False one weight decay for every weight,
    # kept for PC, iPC and Z-IL so that their runs before the split stay comparable and resumable.
    no_decay_group: ClassVar[bool] = False

    @property
    def steps(self) -> int:
        """Energy evaluations (forward + backward passes) per mini-batch."""
        return self.inference_steps

    @property
    def uses_value_nodes(self) -> bool:
        return True

    @property
    def reach(self) -> int:
        """Deepest value-node chain D whose lowest weights still get a learning step within one batch."""
        return self.steps - 1

    def cost(self, n_layers: int) -> Cost:
        """MMs and SMMs per weight update on a chain of `n_layers` weight layers, read off this schedule
        (SPEC.md Table 4; the counting rules are in `pclm.algorithms.cost`)."""
        return schedule_cost(self, n_layers)

    def updates_x(self, t: int) -> bool:
        """Whether the value nodes take an inference step after evaluation t."""
        raise NotImplementedError

    def learning_groups(self, t: int, n_groups: int) -> list[int]:
        """Indices of the weight groups (0 = nearest the output) that take a learning step after evaluation t."""
        raise NotImplementedError

    def start_batch(self) -> float:
        """Called once per mini-batch, after the value nodes exist; returns the inference step's learning rate."""
        return self.inference_lr

    def observe_energy(self, t: int, energy: float, lr: float) -> float:
        """Called with the energy of evaluation t before any update and the inference lr in force; returns the lr
        for the inference step after it (PC's discount lowers it)."""
        return lr


class Diverged(RuntimeError):
    """The energy or the loss became NaN or infinite."""


@dataclass
class StepStats:
    loss: float  # output loss (mean cross-entropy) at the first evaluation, i.e. the feedforward loss
    energy_first: float  # total energy at t = 0
    energy_last: float  # total energy at the last evaluation
