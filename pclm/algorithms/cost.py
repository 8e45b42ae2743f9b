"""Matrix-multiplication cost of one weight update on a chain of L weight layers (SPEC.md section 3, Table 4).

Two counts, in the paper's units (App. C):
* MMs: matrix multiplications performed.
* SMMs: simultaneous matrix multiplications, i.e. the MMs left after every group of mutually independent MMs is
  counted once: the length of the critical path measured in MMs.

What each operation costs on a chain x_0 -> x_1 -> ... -> x_L:
* One inference step (Eq. 6) = move the value nodes, then recompute the errors: the L - 1 propagations
  (d mu_{l+1} / d x_l)^T e_{l+1} all read errors that already exist (1 SMM), and the L predictions mu_l = f(x_{l-1})
  all read value nodes that already exist (1 SMM): 2L - 1 MMs in 2 SMMs.
* BP = a feedforward pass (L MMs, each waiting for the previous one) plus backpropagating the output error down to
  the first hidden layer (L - 1 MMs, again one after another): 2L - 1 MMs in 2L - 1 SMMs.
* Not counted, as in the paper: the weight-gradient outer products e_l x_{l-1}^T (they only read what the counted
  MMs produced, all layers at once) and the feedforward pass that initialises the value nodes of PC, Z-IL and iPC.

How many inference steps one weight update takes is read off the schedule itself (`steps`, `updates_x`,
`learning_groups`), not from the algorithm's name: starting from the feedforward initialisation, where only the
output error is nonzero, the errors reach one layer further down with every inference step, so weight group g
(0 = the output layer) has a nonzero gradient only after g inference steps. A weight update is complete once every
group has learned with a nonzero gradient; its cost is the inference steps taken since the previous complete
update (or since the initialisation). `inference_steps_per_update` returns this for the batch's last complete
update, i.e. the steady state of schedules that update repeatedly:
* PC (T inference steps, then learning): T.      * Z-IL (group g learns at step g): L - 1.
* iPC (learns at every step): 1 once T > L. Its first complete update in a batch waits L - 1 steps for the errors
  to reach the first layer, so with T <= L a mini-batch never reaches the paper's steady state (the paper's
  theorem is about full-batch training, where the value nodes are never re-initialised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Cost", "Schedule", "inference_step_cost", "backprop_cost", "inference_steps_per_update", "schedule_cost"]


class Schedule(Protocol):
    """What the counts read off an update schedule (`pclm.algorithms.Algorithm` is one); a protocol, so that this
    module needs no import of the algorithms that use it."""

    @property
    def steps(self) -> int: ...

    @property
    def uses_value_nodes(self) -> bool: ...

    def updates_x(self, t: int) -> bool: ...

    def learning_groups(self, t: int, n_groups: int) -> list[int]: ...


@dataclass(frozen=True)
class Cost:
    """MMs and SMMs (simultaneous MMs, the critical path) of one weight update."""

    mms: int
    smms: int

    def __mul__(self, n: int) -> Cost:
        return Cost(self.mms * n, self.smms * n)

    __rmul__ = __mul__


def _check(n_layers: int) -> None:
    if n_layers < 1:
        raise ValueError(f"a chain needs at least one weight layer, got n_layers={n_layers}")


def inference_step_cost(n_layers: int) -> Cost:
    """One inference step on L weight layers: L - 1 error propagations, then L predictions; each set in parallel."""
    _check(n_layers)
    return Cost(mms=2 * n_layers - 1, smms=2 if n_layers > 1 else 1)


def backprop_cost(n_layers: int) -> Cost:
    """One BP weight update: L sequential forward MMs + L - 1 sequential backward MMs."""
    _check(n_layers)
    return Cost(mms=2 * n_layers - 1, smms=2 * n_layers - 1)


def inference_steps_per_update(algorithm: Schedule, n_layers: int) -> int:
    """Inference steps the schedule takes per complete weight update of L layers (steady state; module doc)."""
    _check(n_layers)
    learned: set[int] = set()
    taken = since = 0  # inference steps since the initialisation / since the last complete update
    per_update: list[int] = []
    for t in range(algorithm.steps):
        learned |= {g for g in algorithm.learning_groups(t, n_layers) if g <= taken}  # zero gradient below the reach
        if len(learned) == n_layers:
            per_update.append(since)
            learned, since = set(), 0
        if algorithm.updates_x(t):
            taken, since = taken + 1, since + 1
    if not per_update:
        raise ValueError(
            f"{type(algorithm).__name__} with {algorithm.steps} evaluations per batch never updates all "
            f"{n_layers} layers with a nonzero gradient: the errors do not reach the first layer"
        )
    return per_update[-1]


def schedule_cost(algorithm: Schedule, n_layers: int) -> Cost:
    """MMs and SMMs per weight update: BP's sequential pass without value nodes, else the inference steps it waits."""
    if not algorithm.uses_value_nodes:
        return backprop_cost(n_layers)
    return inference_step_cost(n_layers) * inference_steps_per_update(algorithm, n_layers)
