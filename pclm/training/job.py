"""One training job, whatever the task, in Accelerate's order: checks -> Accelerator -> data (main process first) ->
seed -> model -> one prepare -> (load_state) -> output folder + trackers -> the shared loop (`loop.fit`) -> best model
reloaded from disk and scored on every split -> metrics.json.

A task (`pclm.training.lm`, `pclm.training.vision`) is a `Task`: its data, model, monitored dev metric and its
direction, its evaluation and its own metrics.json fields. Everything else is here, once: the run folder's lock and
checks, resume or overwrite, the optimiser, `Fit`, the common metrics fields and the final evaluation. The output
folder is written only once every error a user can cause has been raised: the task's checks and the folder's, then
those that need the data (sizes) or the checkpoint's content (load_state)."""

from __future__ import annotations

import json
import os
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader

from .. import runs
from ..algorithms import Algorithm, build_algorithm
from ..config import PCSection, RunConfig, TrainConfig, VisionRunConfig, VisionTrainConfig, save_config
from ..errors import DiskFull, UsageError
from ..folders import RunFolder, check_overwritable, is_disk_full, write_atomic
from .accelerate_checks import check_accelerate_env, check_accelerator, flat_hparams
from .backends import build_backend, check_backend
from .groups import group_sizes, optimizer_groups
from .loop import Fit, FitState, check_resume, fit, read_state
from .processes import build_accelerator, end_processes, replica_digests
from .tracking import build_tracker

__all__ = ["Task", "run_job", "check_run", "run_algorithm", "build_fit"]


def run_algorithm(algo: str, pc: PCSection, n_layers: int | None = None) -> Algorithm:
    """The algorithm `algo` with a run's `pc` section (T, gamma, discount, and x_grads where the section has it);
    `n_layers`: the model's weight layers (Z-IL runs one step per layer)."""
    x_grads = getattr(pc, "x_grads", "sample")
    return build_algorithm(algo, pc.inference_steps, pc.inference_lr, pc.discount, n_layers, x_grads)


def build_fit(train: TrainConfig | VisionTrainConfig, **fields: Any) -> Fit:
    """The loop's `Fit`: its schedule (epochs, patience, max_steps, checkpoints, logging) from a run's `train`
    section, the rest (model, optimiser, loaders, evaluation, ...) from `fields`."""
    keys = ("epochs", "patience", "max_steps", "checkpoint_every", "checkpoint_minutes", "log_every")
    return Fit(**{key: getattr(train, key) for key in keys}, **fields)


class Task(ABC):
    """What one kind of training job supplies to `run_job`. `cfg` is its run configuration (`RunConfig`,
    `VisionRunConfig`): `seed`, `algo`, the `train` section and `to_dict()` are read here."""

    monitor: str  # the key of `evaluate`'s result that picks the best epoch (metrics.json: init_dev_<monitor>, ...)
    lower_is_better: bool
    final_scores: tuple[str, ...]  # keys of `evaluate`'s result kept for each split of the best model (<split>_<key>)

    def __init__(self, cfg: RunConfig | VisionRunConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def check(self, output_dir: Path) -> Algorithm:
        """Every check of the task a user can fail that needs neither the data nor a load; returns the algorithm
        (`run_algorithm`), the one the run trains with."""

    @abstractmethod
    def skeleton(self) -> torch.nn.Module:
        """The model, on the meta device: what a checkpoint to resume must hold (called after `check`)."""

    @abstractmethod
    def load_data(self) -> dict[str, Any]:
        """Every split, by name ("train", "dev", ...); run on the main process first. UsageError on sizes the data
        cannot hold."""

    @abstractmethod
    def build_model(self, data: dict[str, Any]) -> torch.nn.Module:
        """The untrained model, after the seed is set."""

    def param_groups(self, model: torch.nn.Module, algorithm: Algorithm) -> list[dict]:
        """The weight optimiser's parameter groups (`pclm.training.groups.optimizer_groups`: BERT's no-decay group
        for BP, one decay for every weight otherwise); `model` may live on the meta device."""
        return optimizer_groups(model, algorithm, self.cfg.train.weight_decay)

    def optimizer(self, model: torch.nn.Module, algorithm: Algorithm) -> torch.optim.Optimizer:
        """AdamW on `param_groups`, fused: one kernel for every tensor instead of a Python loop."""
        t = self.cfg.train
        groups = self.param_groups(model, algorithm)
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, fused=True)

    @abstractmethod
    def train_loader(self, data: dict[str, Any]) -> DataLoader:
        """Shuffled training batches. The loader's own generator (seeded) keeps iterator creation off the global
        RNG, which a mid-epoch resume would shift."""

    @abstractmethod
    def eval_sets(self, data: dict[str, Any]) -> dict[str, Any]:
        """What `evaluate` scores, by split ("dev" first); a DataLoader is prepared with the model."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, eval_set: Any, accelerator: Accelerator) -> dict[str, float]: ...

    @abstractmethod
    def select(self) -> Callable:
        """The energy of each value node, by position name (the autograd and compiled backends' `select`)."""

    def batch_transform(self) -> Callable[[Any], Any] | None:
        """Applied to each training batch as the loop takes it (`Fit.batch_transform`)."""
        return None

    @abstractmethod
    def save_best(self, model: torch.nn.Module, path: Path, state_dict: dict) -> None:
        """Write the unwrapped `model` (with its full `state_dict`) into the new folder `path`."""

    @abstractmethod
    def load_best(self, path: Path) -> torch.nn.Module:
        """The model `save_best` wrote, in eval mode."""

    @abstractmethod
    def data_sizes(self, data: dict[str, Any]) -> dict[str, int]: ...

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """The first fields of metrics.json, saying what was trained (algorithm, task or model, ...)."""

    def epoch_eval(self) -> list[str]:
        """Splits besides dev scored after every epoch, for the record (history) only."""
        return []

    def extra_fields(self, state: FitState) -> dict[str, Any]:
        """The task's own metrics.json fields, after the common ones and before the machine."""
        return {}

    def finish(self, output_dir: Path, metrics: dict[str, Any], command: list[str] | None) -> None:
        """Run by the main process once the final metrics are written and a best model exists."""


def check_run(task: Task, output_dir: Path, resume: bool, overwrite: bool) -> tuple[Algorithm, Path | None]:
    """Every check a user can fail that needs neither the data nor a load, before anything is written. Returns the
    algorithm and the checkpoint to resume from."""
    build_tracker(task.cfg.train.tracker, output_dir)
    algorithm = task.check(output_dir)
    if resume:
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(f"output directory '{output_dir}' is a file")
        processes = int(os.environ.get("WORLD_SIZE", 1))  # the launch's, before Accelerate starts
        skeleton = task.skeleton()
        groups = group_sizes(task.param_groups(skeleton, algorithm))
        return algorithm, check_resume(output_dir, task.cfg.to_dict(), skeleton, groups, processes)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output directory '{output_dir}' is a file")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"output directory '{output_dir}' is not empty (pass --overwrite or --resume)")
        check_overwritable(output_dir)
    return algorithm, None


def run_job(
    task: Task,
    output_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    cpu_info: dict | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Train one model of `task`; returns (and writes) the content of metrics.json. The run folder is held by this
    process alone (`RunFolder`) from the first check to the end."""
    output_dir = Path(output_dir)
    with RunFolder(output_dir) as folder:
        try:
            return _run(task, output_dir, resume, overwrite, cpu_info, folder, command)
        except Exception as err:
            if not is_disk_full(err, output_dir):
                raise
            raise DiskFull(f"disk full while writing the run folder '{output_dir}'; {folder.abandon()}") from None


def _machine(accelerator: Accelerator, cpu_info: dict | None) -> dict[str, Any]:
    device = accelerator.device
    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "device": str(device),
        **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        **(cpu_info or {}),
    }


def _run(
    task: Task,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    cpu_info: dict | None,
    folder: RunFolder,
    command: list[str] | None,
) -> dict[str, Any]:
    wall_start = time.perf_counter()
    cfg = task.cfg
    algorithm, checkpoint = check_run(task, output_dir, resume, overwrite)
    restart = resume and checkpoint is None  # stopped before its first checkpoint: nothing to keep
    done = runs.read_metrics(output_dir) if resume else {}
    if done.get("status") in runs.FINAL_STATUSES:  # nothing left to train: the finished run is left as it is
        print(f"{output_dir} has finished already (status {done['status']}): nothing to resume, nothing rewritten")
        return done
    check_accelerate_env()
    accelerator = build_accelerator(
        log_with=build_tracker(cfg.train.tracker, output_dir),
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    check_backend(cfg.train.backend, accelerator)
    check_accelerator(accelerator, cfg.algo, algorithm.uses_value_nodes)
    with accelerator.main_process_first():
        data = task.load_data()
    set_seed(cfg.seed)

    model = task.build_model(data)
    optim_w = task.optimizer(model, algorithm)
    train_loader = task.train_loader(data)
    eval_sets = task.eval_sets(data)
    loaders = [name for name, s in eval_sets.items() if isinstance(s, DataLoader)]
    model, optim_w, train_loader, *prepared = accelerator.prepare(
        model, optim_w, train_loader, *(eval_sets[n] for n in loaders)
    )
    eval_sets.update(zip(loaders, prepared))

    state = FitState()
    if checkpoint is not None:
        try:
            accelerator.load_state(str(checkpoint))
        except Exception as err:  # noqa: BLE001 - a checkpoint's bytes can fail to parse in many ways
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"--resume: cannot load '{checkpoint}' ({first})") from None
        state = read_state(checkpoint)
        accelerator.print(f"resumed from {checkpoint} at epoch {state.epoch + 1}, batch {state.batches_done}")
    elif accelerator.is_main_process:
        if restart:
            accelerator.print(f"{output_dir} has no checkpoint yet (stopped before the first): starting the run again")
        folder.start_fresh(
            overwrite or restart
        )  # an old run is moved aside, dropped at the first checkpoint (folder.commit)
        save_config(cfg, output_dir / "config.yaml")
        write_atomic(output_dir / "config.json", json.dumps(cfg.to_dict()))
    accelerator.wait_for_everyone()
    accelerator.print(f"run folder: {output_dir.resolve()}")
    accelerator.init_trackers("logs", config=flat_hparams(cfg.to_dict()))

    sizes = task.data_sizes(data)
    monitor = task.monitor

    def write_metrics(st: FitState, status: str, final: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = {
            **task.identity(),
            "seed": cfg.seed,
            "epochs_run": len(st.history),
            f"init_dev_{monitor}": st.init_dev,
            "best_epoch": st.best_epoch,
            f"best_dev_{monitor}": st.best,
            "history": st.history,
            "train_seconds": round(st.train_seconds, 2),
            "steps": st.global_step,
            "data_sizes": sizes,
            **task.extra_fields(st),
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "machine": _machine(accelerator, cpu_info),
            **(final or {}),
        }
        if accelerator.is_main_process:
            runs.write_metrics(output_dir, status, fields)
        return {"status": status, **fields}

    job = build_fit(
        cfg.train,
        model=model,
        optim_w=optim_w,
        algorithm=algorithm,
        backend=build_backend(cfg.train.backend, accelerator.unwrap_model(model), optim_w, task.select(), accelerator),
        train_loader=train_loader,
        dev_loader=eval_sets["dev"],
        evaluate=lambda m, eval_set: task.evaluate(m, eval_set, accelerator),
        monitor=monitor,
        lower_is_better=task.lower_is_better,
        save_best=task.save_best,
        write_metrics=write_metrics,
        batch_transform=task.batch_transform(),
        watch={split: eval_sets[split] for split in task.epoch_eval() if split in eval_sets},
    )
    status = fit(job, accelerator, output_dir, state)
    # every process's final weights, hashed: equal digests show the ranks trained one model
    final: dict[str, Any] = {
        "best_model": str(output_dir / "best") if state.best_epoch else None,
        "weights_sha256": replica_digests(accelerator, model),
    }
    if state.best_epoch:  # score the kept model, reloaded from disk, on every split
        best = task.load_best(output_dir / "best").to(accelerator.device)
        for split, eval_set in eval_sets.items():
            scores = task.evaluate(best, eval_set, accelerator)
            final.update({f"{split}_{key}": scores[key] for key in task.final_scores})
    final["wall_seconds"] = round(time.perf_counter() - wall_start, 2)
    metrics = write_metrics(state, status, final)
    if state.best_epoch and accelerator.is_main_process:
        task.finish(output_dir, metrics, command)
    accelerator.wait_for_everyone()
    if status == runs.DIVERGED and folder.restore():  # a run replaced by --overwrite outlives its diverged replacement
        metrics["previous_run_restored"] = True
    else:
        folder.commit()
    del job, model, optim_w, train_loader, prepared, eval_sets
    end_processes(accelerator)
    return metrics
