"""A NaN/inf energy stops the run within the step, records status "diverged", keeps the last good model, and the
CLI exits non-zero with one line."""

import json
import math
from pathlib import Path

import torch
from accelerate import Accelerator

from pclm.algorithms import IPC
from pclm.pc import gaussian
from pclm.training import Fit, FitState, fit
from pclm.training.backends import Autograd
from pclm.training.step import weight_groups
from pclm.vision import MLP
from tests.conftest import TINY, run_main


class ExplodingMLP(MLP):
    """An MLP whose output becomes infinite from its `after`-th forward pass on."""

    def __init__(self, after: int) -> None:
        super().__init__(in_features=4, width=8, depth=2, classes=3)
        self.after, self.calls = after, 0

    def forward(self, pixel_values, labels=None, nodes=None):
        self.calls += 1
        if self.calls >= self.after:
            pixel_values = pixel_values * math.inf
        return super().forward(pixel_values, labels, nodes)


def test_fit_stops_at_the_first_infinite_energy_and_keeps_the_last_good_model(tmp_path):
    torch.manual_seed(0)
    data = [{"pixel_values": torch.randn(4), "labels": torch.tensor(i % 3)} for i in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)  # 2 batches per epoch
    # iPC with T=2: 2 forward passes per batch, 4 per epoch (+1 evaluation pass per dev evaluation).
    model = ExplodingMLP(after=12)
    saved, statuses = [], []
    job = Fit(
        model=model,
        optim_w=torch.optim.AdamW(weight_groups(model), lr=1e-3),
        algorithm=IPC(2, 0.1),
        backend=Autograd(lambda name: gaussian),
        train_loader=loader,
        dev_loader=loader,
        evaluate=lambda m, dl: {"loss": sum(m(**b).loss.item() for b in dl)},
        monitor="loss",
        lower_is_better=True,
        save_best=lambda m, path, state: (path.mkdir(), saved.append(path.name)),
        epochs=5,
        write_metrics=lambda state, status: statuses.append(status),
    )
    state = FitState()
    status = fit(job, Accelerator(cpu=True), tmp_path, state)
    # calls: 1-2 untrained dev eval, 3-6 epoch 1, 7-8 dev, 9-12 epoch 2: the 12th pass (t = 1 of batch 2) is infinite
    assert status == "diverged" and statuses[-1] == "diverged"
    assert model.calls == 12  # stopped within the step where the energy became infinite
    assert len(state.history) == 1 and state.best_epoch == 1 and saved == ["best.new"]  # epoch 1's model is kept
    assert (tmp_path / "best").is_dir() and not (tmp_path / "best.new").exists()  # written beside, swapped in


def test_cli_divergence_exit_code_and_status(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_main(
        [
            "--task",
            "clm",
            "--algo",
            "ipc",
            "--output-dir",
            out,
            "--threads",
            "1",
            *TINY,
            "train.epochs=1",
            "pc.inference_lr=1e30",
        ]
    )
    assert code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "diverged" in err[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    # diverged within epoch 1: no best/ exists, and the error line does not name one
    assert metrics["best_model"] is None and not (out / "best").exists()
    assert "before the first epoch ended, so no model was kept" in err[0] and "best" not in err[0]
    assert Path(out / "config.yaml").is_file()
