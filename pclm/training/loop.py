"""The one training loop, shared by every algorithm and task: epochs of `train_batch`, evaluation on dev after
each epoch, early stopping, resumable checkpoints (Accelerate state + a small JSON), best model kept with
`save_pretrained`, and `metrics.json` written after every epoch."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..algorithms import Algorithm
from .step import Diverged, train_batch

__all__ = ["FitState", "Fit", "fit", "find_checkpoint", "read_state", "STATE_FILE"]

STATE_FILE = "pclm_state.json"
STATE_FORMAT = "pclm-train-state/1"


@dataclass
class FitState:
    """What a checkpoint must remember besides the weights, optimiser and RNG states."""

    epoch: int = 0  # epoch in progress
    batches_done: int = 0  # batches of that epoch already trained
    global_step: int = 0
    best: float | None = None  # best monitored dev value
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    init_dev: float | None = None  # monitored dev value of the untrained model
    epoch_loss_sum: float = 0.0  # sum of the training losses of the batches done this epoch
    epoch_batches: int = 0  # how many batches that sum holds (a resumed epoch reports the whole epoch's mean)


def read_state(checkpoint: Path) -> FitState:
    """The loop state saved in `checkpoint`. Raises OSError / ValueError / TypeError when it is not one."""
    data = json.loads((checkpoint / STATE_FILE).read_text())
    if not isinstance(data, dict) or data.pop("format", None) != STATE_FORMAT:
        raise ValueError("not a pclm training checkpoint")
    return FitState(**data)


def find_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run: checkpoints/last, or checkpoints/last.old when the run was killed
    while swapping a new checkpoint in (see `_save_checkpoint`). None when there is neither."""
    for name in ("last", "last.old"):
        path = output_dir / "checkpoints" / name
        if (path / STATE_FILE).is_file():
            return path
    return None


@dataclass
class Fit:
    """Everything the loop needs; built by a task (pclm.training.lm, pclm.vision)."""

    model: torch.nn.Module
    optim_w: torch.optim.Optimizer
    algorithm: Algorithm
    select: Callable
    train_loader: Any
    dev_loader: Any
    evaluate: Callable[[torch.nn.Module, Any], dict[str, float]]  # (model, loader) -> metrics
    monitor: str  # key of `evaluate`'s result that selects the best epoch
    lower_is_better: bool
    save_best: Callable[[torch.nn.Module, Path], None]  # writes the best model (save_pretrained + tokenizer)
    epochs: int
    patience: int = 0
    max_steps: int | None = None
    checkpoint_every: int = 0
    log_every: int = 20
    write_metrics: Callable[[FitState, str], None] = lambda state, status: None
    # Applied to each training batch as the loop takes it. Randomness drawn here (masked-LM masking) comes from the
    # global RNG in step order, so a checkpoint's RNG state replays it exactly on resume; drawn in the collate
    # function it would run one batch ahead (Accelerate prefetches) and a mid-epoch resume would differ.
    batch_transform: Callable[[Any], Any] | None = None


def _save_checkpoint(accelerator, output_dir: Path, state: FitState) -> None:
    """Write the checkpoint beside the current one, then swap it in: a kill at any moment leaves a complete
    checkpoint (last, or last.old during the swap), never new weights under an old state file."""
    root = output_dir / "checkpoints"
    last, new, old = root / "last", root / "last.new", root / "last.old"
    if accelerator.is_main_process:
        shutil.rmtree(new, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(new))
    if accelerator.is_main_process:
        payload = {"format": STATE_FORMAT, **state.__dict__}
        (new / STATE_FILE).write_text(json.dumps(payload, indent=1))
        if last.exists():
            shutil.rmtree(old, ignore_errors=True)
            last.rename(old)
        new.rename(last)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _improved(fit: Fit, value: float, best: float | None) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if fit.lower_is_better else value > best)


def fit(fit: Fit, accelerator, output_dir: Path, state: FitState) -> str:
    """Train until `fit.epochs`, early stopping, `max_steps` or divergence. Returns the final status:
    "completed", "early_stopped", "max_steps" or "diverged"."""
    model = fit.model
    status = "completed"
    if state.init_dev is None:  # the untrained model's score: the baseline every run starts from
        model.eval()
        state.init_dev = fit.evaluate(model, fit.dev_loader)[fit.monitor]
        accelerator.print(f"untrained dev {fit.monitor}={state.init_dev:.4g}")
    # A resumed run that had already stopped stays stopped.
    if fit.patience and state.bad_epochs >= fit.patience:
        return "early_stopped"
    if fit.max_steps is not None and state.global_step >= fit.max_steps:
        return "max_steps"
    for epoch in range(state.epoch, fit.epochs):
        state.epoch = epoch
        model.train()
        if hasattr(fit.train_loader, "set_epoch"):
            fit.train_loader.set_epoch(epoch)
        loader = fit.train_loader
        if state.batches_done:
            loader = accelerator.skip_first_batches(fit.train_loader, state.batches_done)
        bar = tqdm(loader, total=len(fit.train_loader), initial=state.batches_done, desc=f"epoch {epoch + 1}",
                   disable=not accelerator.is_local_main_process, leave=False, dynamic_ncols=True)
        started = time.perf_counter()
        for batch in bar:
            if fit.batch_transform is not None:
                batch = fit.batch_transform(batch)
            try:
                stats = train_batch(model, batch, fit.algorithm, fit.optim_w, fit.select, accelerator)
            except Diverged as err:
                state.train_seconds += time.perf_counter() - started
                accelerator.print(f"diverged: {err}")
                fit.write_metrics(state, "diverged")
                return "diverged"
            state.batches_done += 1
            state.global_step += 1
            state.epoch_loss_sum, state.epoch_batches = state.epoch_loss_sum + stats.loss, state.epoch_batches + 1
            if state.global_step % fit.log_every == 0:
                accelerator.log({"train/loss": stats.loss, "train/energy_first": stats.energy_first,
                                 "train/energy_last": stats.energy_last}, step=state.global_step)
                bar.set_postfix(loss=f"{stats.loss:.3f}", energy=f"{stats.energy_last:.3f}")
            if fit.max_steps is not None and state.global_step >= fit.max_steps:
                status = "max_steps"
                break
            if fit.checkpoint_every and state.global_step % fit.checkpoint_every == 0:
                state.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                _save_checkpoint(accelerator, output_dir, state)
        bar.close()
        state.train_seconds += time.perf_counter() - started
        model.eval()
        dev = fit.evaluate(model, fit.dev_loader)
        record = {"epoch": epoch + 1, "train_loss": state.epoch_loss_sum / max(state.epoch_batches, 1),
                  **{f"dev_{k}": v for k, v in dev.items()},
                  "train_seconds": round(state.train_seconds, 2)}
        state.history.append(record)
        accelerator.log({f"dev/{k}": v for k, v in dev.items()}, step=state.global_step)
        accelerator.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        if _improved(fit, dev[fit.monitor], state.best):
            state.best, state.best_epoch, state.bad_epochs = dev[fit.monitor], epoch + 1, 0
            if accelerator.is_main_process:
                fit.save_best(accelerator.unwrap_model(model), output_dir / "best")
            accelerator.wait_for_everyone()
        else:
            state.bad_epochs += 1
        if not math.isfinite(dev[fit.monitor]):
            fit.write_metrics(state, "diverged")
            return "diverged"
        state.epoch, state.batches_done = epoch + 1, 0
        state.epoch_loss_sum, state.epoch_batches = 0.0, 0
        if status == "completed" and fit.patience and state.bad_epochs >= fit.patience:
            status = "early_stopped"
        _save_checkpoint(accelerator, output_dir, state)
        fit.write_metrics(state, "running")
        if status != "completed":
            break
    return status
