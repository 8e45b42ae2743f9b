"""MM / SMM accounting read off each schedule, against the closed forms of SPEC.md Table 4."""

import pytest

from pclm.algorithms import BP, IPC, PC, Cost, build_algorithm
from pclm.algorithms.cost import inference_steps_per_update

LAYERS = [2, 3, 4, 8, 32]
STEPS = [1, 5, 12, 40]


@pytest.mark.parametrize("L", LAYERS)
@pytest.mark.parametrize("T", STEPS)
def test_pc_costs_2L_minus_1_times_T_mms_and_2T_smms(L, T):
    if T < L - 1:  # the errors never reach the first layer: no complete weight update (the depth trap)
        with pytest.raises(ValueError, match="never updates all"):
            PC(T, 0.1).cost(L)
        return
    assert PC(T, 0.1, discount=0.9).cost(L) == Cost(mms=(2 * L - 1) * T, smms=2 * T)


@pytest.mark.parametrize("L", LAYERS)
def test_zil_costs_as_table_4(L):
    assert build_algorithm("zil", 0, 1.0, n_layers=L).cost(L) == Cost(mms=(2 * L - 1) * (L - 1), smms=2 * (L - 1))


@pytest.mark.parametrize("L", LAYERS)
def test_bp_costs_2L_minus_1_sequential_mms(L):
    assert BP().cost(L) == Cost(mms=2 * L - 1, smms=2 * L - 1)


@pytest.mark.parametrize("L", LAYERS)
@pytest.mark.parametrize("extra", [1, 2, 10])
def test_ipc_costs_one_inference_step_once_the_errors_reach_every_layer(L, extra):
    T = L + extra
    assert IPC(T, 0.1).cost(L) == Cost(mms=2 * L - 1, smms=2)
    # iPC's SMMs do not grow with depth; BP's do (Theorem 3.1).
    assert IPC(T, 0.1).cost(L).smms < BP().cost(L).smms or L == 2


@pytest.mark.parametrize("L", [2, 4, 8])
def test_short_ipc_batches_pay_the_warm_up(L):
    """With T <= L a mini-batch holds one complete update, which waited L - 1 steps for the errors to reach the
    first layer (Fig. 5); fewer steps than that never update the first layer."""
    assert inference_steps_per_update(IPC(L, 0.1), L) == L - 1
    with pytest.raises(ValueError):
        IPC(L - 1, 0.1).cost(L)


def test_counts_follow_the_schedule_not_the_name():
    class EveryOther(IPC):  # iPC that learns only on odd evaluations: two inference steps per update
        def learning_groups(self, t, n_groups):
            return list(range(n_groups)) if t % 2 else []

    assert EveryOther(20, 0.1).cost(4) == Cost(mms=2 * 7, smms=4)


def test_rejects_empty_chain():
    with pytest.raises(ValueError):
        BP().cost(0)
