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
from ..config import upgrade_saved
from ..errors import UsageError
from ..folders import STATE_FILE, find_checkpoint, is_run_folder, swap_in
from ..runs import COMPLETED, DIVERGED, EARLY_STOPPED, INTERRUPTED, MAX_STEPS, RUNNING
from .accelerate_checks import flat_hparams
from .backends import Backend
from .step import Diverged, train_batch

__all__ = [
    "FitState",
    "Fit",
    "fit",
    "check_resume",
    "config_differences",
    "find_checkpoint",
    "read_state",
    "STATE_FILE",
]

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


_STATE_KINDS = {
    "epoch": int,
    "batches_done": int,
    "global_step": int,
    "best": float,
    "best_epoch": int,
    "bad_epochs": int,
    "history": list,
    "train_seconds": float,
    "init_dev": float,
    "epoch_loss_sum": float,
    "epoch_batches": int,
}
_STATE_OPTIONAL = {"best", "best_epoch", "init_dev"}


def read_state(checkpoint: Path) -> FitState:
    """The loop state saved in `checkpoint`. Raises OSError / ValueError / TypeError when it is not one."""
    data = json.loads((checkpoint / STATE_FILE).read_text())
    if not isinstance(data, dict) or data.pop("format", None) != STATE_FORMAT:
        raise ValueError("not a pclm training checkpoint")
    state = FitState(**data)  # TypeError on a missing or unknown field
    for name, value in state.__dict__.items():  # a crafted file must not reach the loop with the wrong kinds
        kind = _STATE_KINDS[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (
            (value is None and name in _STATE_OPTIONAL)
            or (kind is int and number and isinstance(value, int) and value >= 0)
            or (kind is float and number)
            or (kind is list and isinstance(value, list) and all(isinstance(v, dict) for v in value))
        )
        if not ok:
            raise ValueError(f"{STATE_FILE}: '{name}' must be {kind.__name__}, got {value!r}")
    return state


def config_differences(saved: dict[str, Any], config: dict[str, Any]) -> str:
    """ "train.lr: started with 0.0032, now 0.001; ..." for every dotted key whose value differs."""
    before, after = flat_hparams(saved), flat_hparams(config)
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k, "(unset)") != after.get(k, "(unset)"))
    return "; ".join(f"{k}: started with {before.get(k, '(unset)')!r}, now {after.get(k, '(unset)')!r}" for k in keys)


def check_resume(
    output_dir: Path,
    config: dict[str, Any],
    model: torch.nn.Module,
    groups: list[int],
    processes: int = 1,
) -> Path | None:
    """The checkpoint to resume `output_dir` from, after checking that the run was started with `config` (its
    `config.json`) and that the checkpoint holds `model`'s weights (`model` may live on the meta device), an
    optimiser state for the run's parameter groups (`groups`: their sizes, `pclm.training.groups.group_sizes`) and a
    torch RNG state for each of the `processes` ranks (Accelerate would let a rank without one go on silently, and
    the run would differ). None: the folder holds a run stopped before its first checkpoint, to be started again.
    Any failure is a one-line `UsageError`."""
    checkpoint = find_checkpoint(output_dir)
    bad = f"--resume: '{checkpoint}' is not a readable pclm checkpoint"
    if not is_run_folder(output_dir):
        if checkpoint is None:
            raise UsageError(
                f"--resume: no checkpoint in '{output_dir / 'checkpoints' / 'last'}' and no run's config.json in "
                f"'{output_dir}'"
            )
        raise UsageError(f"{bad} (its folder holds no run's config.json)")
    try:
        saved = json.loads((output_dir / "config.json").read_text())
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"--resume: cannot read '{output_dir / 'config.json'}' ({err})") from None
    saved = upgrade_saved(saved)  # a run from before train.backend: its train.compile / train.fused
    if saved != config:
        raise UsageError(
            f"--resume: the config differs from the one '{output_dir}' was started with "
            f"({config_differences(saved, config)}); leave the overrides out to take the run's own"
        )
    if checkpoint is None:
        return None
    try:
        read_state(checkpoint)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"{bad} ({err})") from None
    # Accelerate's load_state would fail on these with a traceback, or (random states) silently go on without them
    # and break the exact replay of the data order and masks: check them all first.
    weights, optim, rng = (checkpoint / n for n in ("model.safetensors", "optimizer.bin", "random_states_0.pkl"))
    ranks = [checkpoint / f"random_states_{r}.pkl" for r in range(1, processes)]
    missing = [p.name for p in (weights, optim, rng, *ranks) if not p.is_file()]
    if missing:
        raise UsageError(f"{bad} ({', '.join(missing)} missing)")
    from accelerate.utils import load
    from safetensors import safe_open

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        optim_state = load(optim, map_location="cpu")
        rng_state = load(rng)
    except Exception as err:  # noqa: BLE001 - parsing arbitrary bytes can raise almost anything (ValueError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{bad} ({first})") from None
    if found != expected:
        diff = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise UsageError(f"--resume: '{checkpoint}' holds another model's weights (first mismatch: {diff[0]})")
    saved_groups = optim_state.get("param_groups", ()) if isinstance(optim_state, dict) else ()
    sizes = [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in saved_groups]
    if sum(sizes) == sum(groups) and sizes != groups:  # the same weights, grouped otherwise: an older pclm's run
        raise UsageError(
            f"--resume: '{checkpoint}' holds an optimiser state in {len(sizes)} parameter group(s) of {sizes} tensors, "
            f"this run's optimiser has {len(groups)} of {groups} (since BERT's no-decay group became BP's default); "
            "resume it with the pclm version that started it, or start it again with --overwrite"
        )
    if sizes != groups:
        raise UsageError(f"{bad} (optimizer.bin does not match this model's parameters)")
    if not isinstance(rng_state, dict) or "torch_manual_seed" not in rng_state:
        raise UsageError(f"{bad} (random_states_0.pkl holds no torch RNG state)")
    return checkpoint


@dataclass
class Fit:
    """Everything the loop needs; built by the job runner (pclm.training.job) or the Python API (pclm.api)."""

    model: torch.nn.Module
    optim_w: torch.optim.Optimizer
    algorithm: Algorithm
    backend: Backend  # where each mini-batch's gradients come from (`pclm.training.backends`)
    train_loader: Any
    dev_loader: Any  # None: no evaluation (no best epoch, no early stopping)
    evaluate: Callable[[torch.nn.Module, Any], dict[str, float]]  # (model, loader) -> metrics
    monitor: str  # key of `evaluate`'s result that selects the best epoch
    lower_is_better: bool
    save_best: Callable[[torch.nn.Module, Path, dict], None]  # (unwrapped model, folder, its full state dict)
    epochs: int
    patience: int = 0
    max_steps: int | None = None
    checkpoint_every: int = 0
    checkpoint_minutes: float = 0.0  # also a checkpoint whenever this much training time has passed since the last
    log_every: int = 20
    write_metrics: Callable[[FitState, str], None] = lambda state, status: None
    # Applied to each training batch as the loop takes it. Randomness drawn here (masked-LM masking) comes from the
    # global RNG in step order, so a checkpoint's RNG state replays it exactly on resume; drawn in the collate
    # function it would run one batch ahead (Accelerate prefetches) and a mid-epoch resume would differ.
    batch_transform: Callable[[Any], Any] | None = None
    watch: dict[str, Any] = field(default_factory=dict)  # split -> loader scored after every epoch, never selecting
    on_best: Callable[[torch.nn.Module], None] | None = None  # called with the model at each new best dev score


def _save_checkpoint(accelerator, output_dir: Path, state: FitState) -> None:
    """Write the checkpoint beside the current one, then swap it in: a kill at any moment leaves a complete
    checkpoint (last, or last.old during the swap), never new weights under an old state file."""
    root = output_dir / "checkpoints"
    last, new = root / "last", root / "last.new"
    if accelerator.is_main_process:
        shutil.rmtree(new, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(new))
    # save_state has no barrier at its end: every rank's files (random_states_<rank>.pkl) must be written before the
    # main process swaps the folder in, or a rank writes into a folder that has moved (and the checkpoint lacks it)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        payload = {"format": STATE_FORMAT, **state.__dict__}
        (new / STATE_FILE).write_text(json.dumps(payload, indent=1))
        swap_in(new, last)
    accelerator.wait_for_everyone()


def _improved(fit: Fit, value: float, best: float | None) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if fit.lower_is_better else value > best)


def _format_duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class _Clock:
    """When to take a time-based checkpoint: every process must agree, so the interval is turned into a number of
    batches from the main process's measured pace (at the 10th batch, then at every checkpoint) and broadcast."""

    def __init__(self, minutes: float, accelerator) -> None:
        self.seconds, self.accelerator = minutes * 60, accelerator
        self.every: int | None = None  # batches between checkpoints, once measured
        self.since, self.mark = 0, time.perf_counter()

    def _measure(self) -> None:
        pace = (time.perf_counter() - self.mark) / max(self.since, 1)
        every = [max(1, int(self.seconds / max(pace, 1e-9)))]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(every)
        self.every = every[0]

    def tick(self) -> bool:
        """One batch done; True when a checkpoint is due."""
        if not self.seconds:
            return False
        self.since += 1
        if self.every is None and self.since == 10:
            self._measure()
        return self.every is not None and self.since >= self.every

    def reset(self) -> None:
        if self.seconds and self.since:
            self._measure()
        self.since, self.mark = 0, time.perf_counter()


def fit(fit: Fit, accelerator, output_dir: Path | None, state: FitState) -> str:
    """Train until `fit.epochs`, early stopping, `max_steps` or divergence. Returns the final status (`pclm.runs`):
    COMPLETED, EARLY_STOPPED, MAX_STEPS or DIVERGED; `fit.write_metrics` gets RUNNING after each epoch, DIVERGED on a
    divergence and INTERRUPTED on a Ctrl-C (then KeyboardInterrupt goes on up; the job writes the other final
    statuses). `output_dir` None: nothing is written (no checkpoints, no best model; the Python API `pclm.train`).
    One progress bar covers the whole run (epoch k/N in its label, the run's ETA at its end); after 10 batches the
    whole run's duration is estimated and printed."""
    bars: list[tqdm] = []
    try:
        return _fit(fit, accelerator, output_dir, state, bars)
    except KeyboardInterrupt:
        fit.write_metrics(state, INTERRUPTED)
        raise
    finally:  # an error's one line starts a line of its own, not the tail of the bar
        for bar in bars:
            bar.close()


def _fit(fit: Fit, accelerator, output_dir: Path | None, state: FitState, bars: list[tqdm]) -> str:
    model = fit.model
    status = COMPLETED
    evaluating = fit.dev_loader is not None
    eval_seconds = 0.0
    if evaluating and state.init_dev is None:  # the untrained model's score: the baseline every run starts from
        model.eval()
        started = time.perf_counter()
        state.init_dev = fit.evaluate(model, fit.dev_loader)[fit.monitor]
        eval_seconds = (time.perf_counter() - started) * (1 + len(fit.watch))  # dev, and the watched splits alike
        accelerator.print(f"untrained dev {fit.monitor}={state.init_dev:.4g}")
    # A resumed run that had already stopped stays stopped.
    if fit.patience and state.bad_epochs >= fit.patience:
        return EARLY_STOPPED
    if fit.max_steps is not None and state.global_step >= fit.max_steps:
        return MAX_STEPS
    per_epoch = len(fit.train_loader)
    total = fit.epochs * per_epoch if fit.max_steps is None else min(fit.epochs * per_epoch, fit.max_steps)
    bar = tqdm(
        total=total,
        initial=min(state.epoch * per_epoch + state.batches_done, total),
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
        unit="batch",
    )
    bars.append(bar)
    clock = _Clock(fit.checkpoint_minutes if output_dir is not None else 0.0, accelerator)
    run_started, run_batches = time.perf_counter(), 0
    for epoch in range(state.epoch, fit.epochs):
        state.epoch = epoch
        bar.set_description(f"epoch {epoch + 1}/{fit.epochs}")
        model.train()
        if hasattr(fit.train_loader, "set_epoch"):
            fit.train_loader.set_epoch(epoch)
        loader = fit.train_loader
        if state.batches_done:
            loader = accelerator.skip_first_batches(fit.train_loader, state.batches_done)
        started = time.perf_counter()
        for batch in loader:
            if fit.batch_transform is not None:
                batch = fit.batch_transform(batch)
            try:
                stats = train_batch(model, batch, fit.algorithm, fit.optim_w, fit.backend)
            except Diverged as err:
                state.train_seconds += time.perf_counter() - started
                bar.close()
                accelerator.print(f"diverged: {err}")
                fit.write_metrics(state, DIVERGED)
                return DIVERGED
            state.batches_done += 1
            state.global_step += 1
            state.epoch_loss_sum, state.epoch_batches = state.epoch_loss_sum + stats.loss, state.epoch_batches + 1
            bar.update(1)
            run_batches += 1
            if run_batches == 10:
                pace = (time.perf_counter() - run_started) / run_batches
                left = total - bar.n
                estimate = left * pace + (fit.epochs - epoch) * eval_seconds
                accelerator.print(
                    f"\nestimated time to the end: {_format_duration(estimate)} ({left} batches at "
                    f"{pace:.2f} s{f', plus {fit.epochs - epoch} evaluations' if eval_seconds else ''})"
                )
            if state.global_step % fit.log_every == 0:
                accelerator.log(
                    {
                        "train/loss": stats.loss,
                        "train/energy_first": stats.energy_first,
                        "train/energy_last": stats.energy_last,
                    },
                    step=state.global_step,
                )
                bar.set_postfix(loss=f"{stats.loss:.3f}", energy=f"{stats.energy_last:.3f}")
            if fit.max_steps is not None and state.global_step >= fit.max_steps:
                status = MAX_STEPS
                break
            due = fit.checkpoint_every and state.global_step % fit.checkpoint_every == 0
            if clock.tick() or (due and output_dir is not None):
                state.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                _save_checkpoint(accelerator, output_dir, state)
                clock.reset()
        state.train_seconds += time.perf_counter() - started
        model.eval()
        dev = fit.evaluate(model, fit.dev_loader) if evaluating else {}
        watched = {f"{split}_{k}": v for split, ld in fit.watch.items() for k, v in fit.evaluate(model, ld).items()}
        record = {
            "epoch": epoch + 1,
            "train_loss": state.epoch_loss_sum / max(state.epoch_batches, 1),
            **{f"dev_{k}": v for k, v in dev.items()},
            **watched,
            "train_seconds": round(state.train_seconds, 2),
        }
        state.history.append(record)
        accelerator.log({f"dev/{k}": v for k, v in dev.items()}, step=state.global_step)
        accelerator.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        if evaluating and _improved(fit, dev[fit.monitor], state.best):
            state.best, state.best_epoch, state.bad_epochs = dev[fit.monitor], epoch + 1, 0
            if fit.on_best is not None:
                fit.on_best(model)
            if output_dir is not None:
                state_dict = accelerator.get_state_dict(model)  # every rank: FSDP gathers the shards here
                if accelerator.is_main_process:  # written beside the current best/, then swapped in whole
                    shutil.rmtree(output_dir / "best.new", ignore_errors=True)
                    fit.save_best(accelerator.unwrap_model(model), output_dir / "best.new", state_dict)
                    swap_in(output_dir / "best.new", output_dir / "best")
                accelerator.wait_for_everyone()
        elif evaluating:
            state.bad_epochs += 1
        if evaluating and not math.isfinite(dev[fit.monitor]):
            fit.write_metrics(state, DIVERGED)
            return DIVERGED
        state.epoch, state.batches_done = epoch + 1, 0
        state.epoch_loss_sum, state.epoch_batches = 0.0, 0
        if status == COMPLETED and fit.patience and state.bad_epochs >= fit.patience:
            status = EARLY_STOPPED
        if output_dir is not None:
            _save_checkpoint(accelerator, output_dir, state)
        fit.write_metrics(state, RUNNING)
        clock.reset()
        if status != COMPLETED:
            break
    bar.close()
    return status
