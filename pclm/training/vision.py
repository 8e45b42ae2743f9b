"""The vision classification job, on the same loop (`loop.fit`) and step (`step.train_batch`) as the language models,
in the same order as `pclm.training.lm`: checks -> Accelerator -> data (main process first) -> seed -> model -> one
prepare -> (load_state) -> output folder -> the shared loop -> best model reloaded from disk -> test -> metrics.json.

Every hidden layer is a value node with the Gaussian energy; the output node is clamped to the label with the
cross-entropy energy (so the feedforward energy equals the BP loss). The pieces it puts together live with their
concept: the classifier and its saved form (`pclm.vision.classifier`), the in-memory splits
(`pclm.data.vision_splits`) and their scoring (`pclm.evaluation.vision`).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader

from .. import runs
from ..algorithms import Algorithm, build_algorithm
from ..config import VisionRunConfig, save_config
from ..data.vision_splits import TensorBatches, vision_data
from ..errors import UsageError
from ..evaluation.vision import evaluate_vision
from ..folders import RunFolder, check_overwritable, write_atomic
from ..pc import gaussian
from ..vision.augment import random_crop_flip
from ..vision.classifier import build_model, input_channels, load_vision_run, model_spec, save_vision_model
from ..vision.fused_mlp import FusedMLP
from .accelerate_checks import check_accelerate_env, check_accelerator, flat_hparams
from .compiled import CompiledEnergy, check_compile
from .loop import Fit, FitState, check_resume, fit, read_state
from .processes import build_accelerator, end_processes, replica_digests
from .step import weight_groups
from .tracking import build_tracker

__all__ = ["train_vision", "check_vision_run"]


def _algorithm(cfg: VisionRunConfig, model: nn.Module) -> Algorithm:
    n_layers = len(model.pc_layers())
    return build_algorithm(cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount, n_layers=n_layers)


def _all_gaussian(name: str):
    """Every hidden position of a vision model is a value node with the Gaussian energy."""
    return gaussian


def check_vision_run(cfg: VisionRunConfig, output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Every check a user can fail that needs neither the data nor a load, before anything is written.
    Returns the checkpoint to resume from."""
    name, kwargs = model_spec(cfg)
    with torch.device("meta"):
        model = build_model(name, kwargs, input_channels(kwargs))
    algorithm = _algorithm(cfg, model)
    build_tracker(cfg.train.tracker, output_dir)
    depth = len(model.pc_layers()) - 1  # value nodes on the chain
    if algorithm.uses_value_nodes and depth > algorithm.reach:
        raise UsageError(
            f"{cfg.algo} with T={cfg.pc.inference_steps} reaches {algorithm.reach} value nodes but "
            f"'{name}' has {depth}: the lowest weights would never learn (raise pc.inference_steps)"
        )
    if cfg.train.fused:
        if name != "mlp":
            raise UsageError(f"train.fused=true needs model.name=mlp, not '{name}'")
        if cfg.train.compile:
            raise UsageError("train.fused=true and train.compile=true exclude each other")
    if cfg.data.data_dir is None:
        raise UsageError(f"no data directory for dataset '{cfg.data.dataset}' (pass --data-dir or data.data_dir)")
    if not Path(cfg.data.data_dir).is_dir():
        raise UsageError(f"data directory not found: {cfg.data.data_dir}")
    if resume:
        return check_resume(output_dir, cfg.to_dict(), model)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output directory '{output_dir}' is a file")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"output directory '{output_dir}' is not empty (pass --overwrite or --resume)")
        check_overwritable(output_dir)
    return None


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def _augmented(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`data.augment`: the batch with randomly cropped and flipped images, on the batch's device. Run by the loop
    as it takes the batch (`Fit.batch_transform`), so the draws follow the global RNG in step order and a resume
    replays them; the dev and test splits never pass through here."""
    return {**batch, "pixel_values": random_crop_flip(batch["pixel_values"])}


def _optimizer(cfg: VisionRunConfig, model: nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    groups = weight_groups(model)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, fused=True)


def _epoch_seconds(history: list[dict[str, Any]]) -> list[float]:
    totals = [0.0] + [h["train_seconds"] for h in history]
    return [round(b - a, 2) for a, b in zip(totals[:-1], totals[1:])]


def train_vision(
    cfg: VisionRunConfig, output_dir: Path, resume: bool = False, overwrite: bool = False, cpu_info: dict | None = None
) -> dict[str, Any]:
    """Train one vision classifier; returns (and writes) the content of metrics.json. The run folder is held by
    this process alone (`RunFolder`) from the first check to the end."""
    output_dir = Path(output_dir)
    with RunFolder(output_dir) as folder:
        return _train_vision(cfg, output_dir, resume, overwrite, cpu_info, folder)


def _train_vision(
    cfg: VisionRunConfig, output_dir: Path, resume: bool, overwrite: bool, cpu_info: dict | None, folder: RunFolder
) -> dict[str, Any]:
    wall_start = time.perf_counter()
    checkpoint = check_vision_run(cfg, output_dir, resume, overwrite)
    check_accelerate_env()
    accelerator = build_accelerator(
        log_with=build_tracker(cfg.train.tracker, output_dir),
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    check_compile(cfg.train.compile, accelerator)
    check_compile(cfg.train.fused, accelerator, "train.fused")
    check_accelerator(accelerator, cfg.algo, cfg.algo != "bp")
    with accelerator.main_process_first():
        data = vision_data(cfg)  # raises UsageError on sizes the data set cannot hold
    set_seed(cfg.seed)

    name, kwargs = model_spec(cfg)
    model = build_model(name, kwargs, input_channels(kwargs))
    if cfg.data.normalize:  # per-channel statistics of the training images; loaded from the checkpoint on resume
        train_images = data["train"][0]
        model.mean.copy_(train_images.mean(dim=(0, 2, 3)).reshape(model.mean.shape))
        model.std.copy_(train_images.std(dim=(0, 2, 3)).clamp(min=1e-6).reshape(model.std.shape))
    algorithm = _algorithm(cfg, model)
    optim_w = _optimizer(cfg, model)
    # The loader's own generator keeps iterator creation off the global RNG, which a mid-epoch resume would shift.
    train_loader = DataLoader(
        TensorBatches(*data["train"]),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        collate_fn=_as_is,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    model, optim_w, train_loader = accelerator.prepare(model, optim_w, train_loader)

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
        folder.start_fresh(overwrite)  # an old run is moved aside, dropped at the first checkpoint (folder.commit)
        save_config(cfg, output_dir / "config.yaml")
        write_atomic(output_dir / "config.json", json.dumps(cfg.to_dict()))
    accelerator.wait_for_everyone()
    accelerator.init_trackers("logs", config=flat_hparams(cfg.to_dict()))

    sizes = {split: len(labels) for split, (_, labels) in data.items()}
    eval_bs = cfg.train.eval_batch_size

    def write_metrics(st: FitState, status: str, final: dict[str, Any] | None = None) -> dict[str, Any]:
        per_epoch = _epoch_seconds(st.history)
        fields = {
            "algo": cfg.algo,
            "model": name,
            "dataset": cfg.data.dataset,
            "seed": cfg.seed,
            "dev_is_test": cfg.data.dev_size == 0,
            "epochs_run": len(st.history),
            "init_dev_accuracy": st.init_dev,
            "best_epoch": st.best_epoch,
            "best_dev_accuracy": st.best,
            "history": st.history,
            "train_seconds": round(st.train_seconds, 2),
            "seconds_per_epoch": per_epoch,
            "mean_seconds_per_epoch": round(sum(per_epoch) / len(per_epoch), 2) if per_epoch else None,
            "steps": st.global_step,
            "data_sizes": sizes,
            "model_kwargs": kwargs,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "machine": {
                "platform": platform.platform(),
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "device": str(accelerator.device),
                **(
                    {"gpu": torch.cuda.get_device_name(accelerator.device)} if accelerator.device.type == "cuda" else {}
                ),
                **(cpu_info or {}),
            },
            **(final or {}),
        }
        if accelerator.is_main_process:
            runs.write_metrics(output_dir, status, fields)
        return {"status": status, **fields}

    job = Fit(
        model=model,
        optim_w=optim_w,
        algorithm=algorithm,
        select=_all_gaussian,
        train_loader=train_loader,
        dev_loader=data["dev"],
        evaluate=lambda m, d: evaluate_vision(m, d, eval_bs),
        monitor="accuracy",
        lower_is_better=False,
        save_best=lambda m, path, state: save_vision_model(m, cfg, path, state),
        epochs=cfg.train.epochs,
        patience=cfg.train.patience,
        max_steps=cfg.train.max_steps,
        checkpoint_every=cfg.train.checkpoint_every,
        log_every=cfg.train.log_every,
        write_metrics=write_metrics,
        batch_transform=_augmented if cfg.data.augment else None,
        compiled=CompiledEnergy(accelerator.unwrap_model(model)) if cfg.train.compile else None,
        fused=FusedMLP(accelerator.unwrap_model(model), optim_w) if cfg.train.fused else None,
        after_checkpoint=folder.commit,
    )
    status = fit(job, accelerator, output_dir, state)
    folder.commit()
    # every process's final weights, hashed: equal digests show the ranks trained one model
    final: dict[str, Any] = {
        "best_model": str(output_dir / "best") if state.best_epoch else None,
        "weights_sha256": replica_digests(accelerator, model),
    }
    if state.best_epoch:  # score the kept model, reloaded from disk
        best = load_vision_run(output_dir / "best")[0].to(accelerator.device)
        for split in ("dev", "test"):
            scores = evaluate_vision(best, data[split], eval_bs)
            final[f"{split}_accuracy"], final[f"{split}_loss"] = scores["accuracy"], scores["loss"]
    final["wall_seconds"] = round(time.perf_counter() - wall_start, 2)
    metrics = write_metrics(state, status, final)
    del job, model, optim_w, train_loader
    end_processes(accelerator)
    return metrics
