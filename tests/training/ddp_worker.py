"""Run under `accelerate launch --num_processes 2 --cpu`: train a tiny PCLM with iPC then PC on different data
per rank and write each rank's flattened weights, so the test can check they stay identical."""

import gc
import json
import sys
from pathlib import Path

# Run as a script, not collected by pytest: the checkout goes first on the path, for `tests.conftest` (the tests'
# one tiny model) and for the checkout's own `pclm`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from pclm.algorithms import build_algorithm
from pclm.models.value_nodes import value_node_selector
from pclm.training.backends import Autograd
from pclm.training.step import train_batch, weight_groups
from tests.conftest import tiny_lm


def main(out_path: str) -> None:
    accelerator = Accelerator(cpu=True)
    set_seed(0)
    model = tiny_lm("clm")
    optim = torch.optim.AdamW(weight_groups(model), lr=1e-2)
    data = torch.randint(5, model.config.vocab_size, (16, 8), generator=torch.Generator().manual_seed(1))
    loader = torch.utils.data.DataLoader([{"input_ids": row, "labels": row} for row in data], batch_size=4)
    model, optim, loader = accelerator.prepare(model, optim, loader)
    select = value_node_selector("out+scores")
    start = torch.cat([p.detach().flatten() for p in accelerator.unwrap_model(model).parameters()])
    first_x = []
    for algo in ("ipc", "pc"):
        algorithm = build_algorithm(algo, 4, 0.1)
        for batch in loader:
            train_batch(model, batch, algorithm, optim, Autograd(select, accelerator))
            first_x.append(float(batch["input_ids"].float().sum()))
    flat = torch.cat([p.detach().flatten() for p in accelerator.unwrap_model(model).parameters()])
    gathered = accelerator.gather(flat[None])
    batches = accelerator.gather(torch.tensor([first_x]))
    if accelerator.is_main_process:
        json.dump(
            {
                "max_abs_diff": float((gathered[0] - gathered[1]).abs().max()),
                "moved": float((flat - start).abs().max()),
                "ranks_saw_different_batches": bool((batches[0] != batches[1]).any()),
                "num_processes": accelerator.num_processes,
            },
            open(out_path, "w"),
        )
    # Teardown in order: the DDP-wrapped model, optimiser and loader go first, while the gloo process group still
    # exists; then both ranks meet and the group is destroyed, as the training scripts' end_training does. Left to
    # exit-time destructors, or with the group destroyed first, a rank now and then aborted ("terminate called
    # without an active exception") or hung while the objects of main() were freed (about 1 run in 6-10).
    del model, optim, loader
    gc.collect()
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])
