"""The vision classification job, on the same loop (`loop.fit`) and step (`step.train_batch`) as the language models,
in the same order as `pclm.training.lm`: checks -> Accelerator -> data (main process first) -> seed -> model -> one
prepare -> (load_state) -> output folder -> the shared loop -> best model reloaded from disk -> test -> metrics.json.

Every hidden layer is a value node with the Gaussian energy; the output node is clamped to the label with the
cross-entropy energy (so the feedforward energy equals the BP loss). Images stay in memory as one tensor and a batch
is fetched with one index operation; the model sees [0, 1] images and standardises them itself (`Normalized`), so a
saved model (`load_vision_run`) takes the data loaders' images as they are (`predict_logits`).
"""

from __future__ import annotations

import inspect
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader, Dataset

from .. import runs
from ..algorithms import Algorithm, build_algorithm
from ..config import VisionRunConfig, load_vision_config, save_config
from ..data.vision import VISION_DATASETS, load_vision_dataset
from ..errors import UsageError
from ..folders import RunFolder, check_overwritable, write_atomic
from ..pc import gaussian
from ..vision.augment import random_crop_flip
from ..vision.fused_mlp import FusedMLP
from ..vision.registry import VISION_MODELS, build_vision_model
from .accelerate_checks import check_accelerate_env, check_accelerator, flat_hparams
from .compiled import CompiledEnergy, check_compile
from .loop import Fit, FitState, check_resume, fit, read_state
from .processes import build_accelerator, end_processes, replica_digests
from .step import weight_groups
from .tracking import build_tracker

__all__ = [
    "Normalized",
    "train_vision",
    "check_vision_run",
    "model_spec",
    "build_model",
    "evaluate_vision",
    "predict_logits",
    "load_vision_run",
    "vision_data",
]

WEIGHTS_FILE = "model.safetensors"
MODEL_FILE = "model.json"  # {"name": ..., "kwargs": {...}}: what build_model needs to rebuild the network


class Normalized(nn.Module):
    """`model` on images standardised per channel, (pixel_values - mean) / std; mean and std are buffers saved with
    the weights, so the model takes [0, 1] images (B, C, H, W). Value nodes and `pc_layers` are the inner model's."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).clone())

    def pc_layers(self) -> list[list[nn.Parameter]]:
        return self.model.pc_layers()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None):
        return self.model((pixel_values - self.mean) / self.std, labels=labels, nodes=nodes)


def model_spec(cfg: VisionRunConfig) -> tuple[str, dict[str, Any]]:
    """(model name, constructor arguments): the shape arguments (in_features / in_channels, image_size, classes)
    come from the data set, the rest from the config's `model` section, checked against the constructor."""
    name = cfg.model["name"]
    if name not in VISION_MODELS:
        raise UsageError(f"unknown vision model '{name}' (choose from {', '.join(VISION_MODELS)})")
    if cfg.data.dataset not in VISION_DATASETS:
        raise UsageError(f"unknown dataset '{cfg.data.dataset}' (choose from {', '.join(VISION_DATASETS)})")
    channels, size, classes = VISION_DATASETS[cfg.data.dataset]
    params = inspect.signature(VISION_MODELS[name]).parameters
    derived = {"in_features": channels * size * size, "in_channels": channels, "image_size": size, "classes": classes}
    derived = {k: v for k, v in derived.items() if k in params}
    user = {k: v for k, v in cfg.model.items() if k != "name"}
    for key in user:
        if key in derived:
            raise UsageError(f"config key 'model.{key}' is set by the data set ({cfg.data.dataset}), not the config")
        if key not in params:
            known = ", ".join(k for k in params if k not in derived)
            raise UsageError(f"unknown config key 'model.{key}' for model '{name}' (known: {known})")
    return name, {**derived, **user}


def build_model(name: str, kwargs: dict[str, Any], channels: int) -> Normalized:
    """The classifier, wrapped in `Normalized` with mean 0 / std 1 (set from the data, or loaded with the weights)."""
    try:
        inner = build_vision_model(name, **kwargs)
    except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: torch on impossible layer sizes
        raise UsageError(f"bad model config for '{name}': {err}") from None
    return Normalized(inner, torch.zeros(channels), torch.ones(channels))


def _channels(kwargs: dict[str, Any]) -> int:
    return int(kwargs.get("in_channels", 1))


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
        model = build_model(name, kwargs, _channels(kwargs))
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


def _draw(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int, what: str):
    if n is None:
        return images, labels
    if n > len(images):
        raise UsageError(f"{what} asks for {n} images but only {len(images)} are available")
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[rows], labels[rows]


def vision_data(cfg: VisionRunConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "dev", "test"} -> (images (N, C, H, W) in [0, 1], labels (N,)). Dev is drawn from the official
    training split with `split_seed` and never trained on; train is drawn from the rest; test is the official test
    split (a subset with `test_size`). dev_size=0: dev IS the test split (benchmarks that report test per epoch)."""
    d = cfg.data
    images, labels = load_vision_dataset(d.dataset, d.data_dir, "train")
    if d.dev_size >= len(images):
        raise UsageError(f"data.dev_size={d.dev_size} leaves no training images (the split has {len(images)})")
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(d.split_seed))
    dev_rows, train_rows = rows[: d.dev_size], rows[d.dev_size :]
    if d.train_size is not None:
        if d.train_size > len(train_rows):
            raise UsageError(
                f"data.train_size={d.train_size} but only {len(train_rows)} training images are left "
                f"after dev ({d.dev_size})"
            )
        train_rows = train_rows[: d.train_size]
    test = _draw(*load_vision_dataset(d.dataset, d.data_dir, "test"), d.test_size, d.split_seed, "data.test_size")
    dev = (images[dev_rows], labels[dev_rows]) if d.dev_size else test
    return {"train": (images[train_rows].contiguous(), labels[train_rows]), "dev": dev, "test": test}


class TensorBatches(Dataset):
    """Images and labels held as two tensors. The DataLoader fetches a whole batch with one index operation
    (`__getitems__`) instead of one sample at a time and a stack."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[i], "labels": self.labels[i]}

    def __getitems__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(rows)
        return {"pixel_values": self.images[rows], "labels": self.labels[rows]}


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def _augmented(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`data.augment`: the batch with randomly cropped and flipped images, on the batch's device. Run by the loop
    as it takes the batch (`Fit.batch_transform`), so the draws follow the global RNG in step order and a resume
    replays them; the dev and test splits never pass through here."""
    return {**batch, "pixel_values": random_crop_flip(batch["pixel_values"])}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, classes) on the CPU of `images` (N, C, H, W) in [0, 1], in batches, feedforward (no value nodes).
    Softmax of the result gives the class probabilities."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(pixel_values=images[i : i + batch_size].to(device)).logits.float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate_vision(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> dict[str, float]:
    """Accuracy and mean cross-entropy over (images, labels). Accuracy is NaN when the loss is not finite (NaN
    weights), so the loop sees the divergence."""
    images, labels = data
    device = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        y = labels[i : i + batch_size].to(device)
        logits = model(pixel_values=images[i : i + batch_size].to(device)).logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
    n = max(len(labels), 1)
    loss = loss_sum / n
    return {"accuracy": correct / n if math.isfinite(loss) else math.nan, "loss": loss}


def save_vision_model(model: Normalized, cfg: VisionRunConfig, path: Path, state_dict: dict | None = None) -> None:
    """`path`/model.safetensors (weights and normalisation: `state_dict`, else the model's), model.json (name and
    constructor arguments), and the run's config (config.yaml, config.json)."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state_dict = model.state_dict() if state_dict is None else state_dict
    save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(path / WEIGHTS_FILE))
    name, kwargs = model_spec(cfg)
    (path / MODEL_FILE).write_text(json.dumps({"name": name, "kwargs": kwargs}, indent=1))
    save_config(cfg, path / "config.yaml")
    (path / "config.json").write_text(json.dumps(cfg.to_dict()))


def load_vision_run(run_dir: str | Path) -> tuple[Normalized, VisionRunConfig]:
    """(model in eval mode on the CPU, its run config) from a run folder (its best/ model) or a best/ folder."""
    from safetensors.torch import load_file

    folder = Path(run_dir)
    if (folder / "best" / MODEL_FILE).is_file():
        folder = folder / "best"
    if not (folder / MODEL_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UsageError(f"'{run_dir}' holds no saved vision model ({MODEL_FILE} and {WEIGHTS_FILE})")
    try:
        spec = json.loads((folder / MODEL_FILE).read_text())
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("kwargs"), dict)):
            raise ValueError('expected {"name": ..., "kwargs": {...}}')
    except (OSError, ValueError) as err:
        raise UsageError(f"'{folder / MODEL_FILE}' is not a saved model spec ({err})") from None
    cfg = load_vision_config(folder / "config.yaml")
    if spec["name"] not in VISION_MODELS:
        raise UsageError(f"'{folder / MODEL_FILE}' names an unknown model '{spec['name']}'")
    from ..config import check_vision_model

    check_vision_model(spec["kwargs"])
    model = build_model(spec["name"], spec["kwargs"], _channels(spec["kwargs"]))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except Exception as err:  # noqa: BLE001 - not safetensors, or another model's weights
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UsageError(f"'{folder / WEIGHTS_FILE}' does not hold this model's weights ({first})") from None
    return model.eval(), cfg


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
    model = build_model(name, kwargs, _channels(kwargs))
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
