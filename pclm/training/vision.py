"""The vision classification job: a `Task` of the shared job runner (`pclm.training.job.run_job`) that trains a
classifier on an in-memory image data set, picks the best epoch by dev accuracy (higher is better) and scores the kept
model's accuracy and loss on dev and test.

Every hidden layer is a value node with the Gaussian energy; the output node is clamped to the label with the
cross-entropy energy (so the feedforward energy equals the BP loss). The pieces it puts together live with their
concept: the classifier and its saved form (`pclm.vision.classifier`), the in-memory splits
(`pclm.data.vision_splits`) and their scoring (`pclm.evaluation.vision`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..algorithms import Algorithm, check_reach
from ..config import VisionRunConfig
from ..data.vision_splits import TensorBatches, vision_data
from ..errors import UsageError
from ..evaluation.vision import evaluate_vision
from ..pc import gaussian
from ..vision.augment import random_crop_flip
from ..vision.classifier import build_model, input_channels, load_vision_run, model_spec, save_vision_model
from .groups import weight_groups
from .job import Task, check_run, run_algorithm, run_job
from .loop import FitState

__all__ = ["train_vision", "check_vision_run", "VisionTask"]


def _all_gaussian(name: str):
    """Every hidden position of a vision model is a value node with the Gaussian energy."""
    return gaussian


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def _augmented(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`data.augment`: the batch with randomly cropped and flipped images, on the batch's device. Run by the loop
    as it takes the batch (`Fit.batch_transform`), so the draws follow the global RNG in step order and a resume
    replays them; the dev and test splits never pass through here."""
    return {**batch, "pixel_values": random_crop_flip(batch["pixel_values"])}


def _epoch_seconds(history: list[dict[str, Any]]) -> list[float]:
    totals = [0.0] + [h["train_seconds"] for h in history]
    return [round(b - a, 2) for a, b in zip(totals[:-1], totals[1:])]


class VisionTask(Task):
    """An image classifier (`model.name`: mlp, cnn, ...), selected by dev accuracy and scored by accuracy and loss."""

    monitor = "accuracy"
    lower_is_better = False
    final_scores = ("accuracy", "loss")

    def __init__(self, cfg: VisionRunConfig) -> None:
        super().__init__(cfg)
        self.name, self.kwargs = "", {}  # model.name and its constructor arguments, checked by `check`

    def skeleton(self) -> nn.Module:
        with torch.device("meta"):
            return build_model(self.name, self.kwargs, input_channels(self.kwargs, self.cfg.data.dataset))

    def check(self, output_dir: Path) -> Algorithm:
        cfg = self.cfg
        self.name, self.kwargs = model_spec(cfg)
        name = self.name
        n_layers = len(self.skeleton().pc_layers())  # weight layers, read off the model on the meta device
        algorithm = run_algorithm(cfg.algo, cfg.pc, n_layers)
        check_reach(algorithm, cfg.algo, n_layers - 1, f"model '{name}'", "pc.inference_steps")
        if cfg.train.backend == "closed_form" and name != "mlp":
            raise UsageError(f"train.backend=closed_form needs model.name=mlp, not '{name}'")
        if cfg.data.data_dir is None:
            raise UsageError(f"no data directory for dataset '{cfg.data.dataset}' (pass --data-dir or data.data_dir)")
        if not Path(cfg.data.data_dir).is_dir():
            raise UsageError(f"data directory not found: {cfg.data.data_dir}")
        return algorithm

    def load_data(self) -> dict[str, Any]:
        return vision_data(self.cfg)  # raises UsageError on sizes the data set cannot hold

    def build_model(self, data: dict[str, Any]) -> nn.Module:
        model = build_model(self.name, self.kwargs, input_channels(self.kwargs, self.cfg.data.dataset))
        if self.cfg.data.normalize:  # per-channel statistics of the training images; loaded from the checkpoint
            train_images = data["train"][0]
            model.mean.copy_(train_images.mean(dim=(0, 2, 3)).reshape(model.mean.shape))
            model.std.copy_(train_images.std(dim=(0, 2, 3)).clamp(min=1e-6).reshape(model.std.shape))
        return model

    def param_groups(self, model: nn.Module, algorithm: Algorithm) -> list[dict]:
        """One group per layer for every algorithm (`weight_groups`), as the closed-form MLP (train.backend=closed_form) needs."""
        return weight_groups(model)

    def optimizer(self, model: nn.Module, algorithm: Algorithm) -> torch.optim.Optimizer:
        t = self.cfg.train
        if t.optimizer == "sgd":
            return torch.optim.SGD(
                self.param_groups(model, algorithm), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
            )
        if t.optimizer == "adam":
            return torch.optim.Adam(
                self.param_groups(model, algorithm), lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, fused=True
            )
        return super().optimizer(model, algorithm)

    def train_loader(self, data: dict[str, Any]) -> DataLoader:
        return DataLoader(
            TensorBatches(*data["train"]),
            batch_size=self.cfg.train.batch_size,
            shuffle=True,
            collate_fn=_as_is,
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def eval_sets(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"dev": data["dev"], "test": data["test"]}  # (images, labels) in memory, scored in slices

    def evaluate(self, model: nn.Module, eval_set: Any, accelerator) -> dict[str, float]:
        return evaluate_vision(model, eval_set, self.cfg.train.eval_batch_size)

    def select(self) -> Callable:
        return _all_gaussian

    def batch_transform(self) -> Callable[[Any], Any] | None:
        return _augmented if self.cfg.data.augment else None

    def save_best(self, model: nn.Module, path: Path, state_dict: dict) -> None:
        save_vision_model(model, self.cfg, path, state_dict)

    def load_best(self, path: Path) -> nn.Module:
        return load_vision_run(path)[0]

    def data_sizes(self, data: dict[str, Any]) -> dict[str, int]:
        return {split: len(labels) for split, (_, labels) in data.items()}

    def identity(self) -> dict[str, Any]:
        return {"algo": self.cfg.algo, "model": self.name, "dataset": self.cfg.data.dataset}

    def extra_fields(self, state: FitState) -> dict[str, Any]:
        per_epoch = _epoch_seconds(state.history)
        return {
            "dev_is_test": self.cfg.data.dev_size == 0,
            "seconds_per_epoch": per_epoch,
            "mean_seconds_per_epoch": round(sum(per_epoch) / len(per_epoch), 2) if per_epoch else None,
            "model_kwargs": self.kwargs,
        }


def check_vision_run(cfg: VisionRunConfig, output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Every check a user can fail that needs neither the data nor a load, before anything is written.
    Returns the checkpoint to resume from."""
    return check_run(VisionTask(cfg), Path(output_dir), resume, overwrite)[1]


def train_vision(cfg: VisionRunConfig, output_dir: Path, **options: Any) -> dict[str, Any]:
    """Train one vision classifier; returns (and writes) the content of metrics.json. `options`: `run_job`'s."""
    return run_job(VisionTask(cfg), output_dir, **options)
