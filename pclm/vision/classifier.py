"""A vision classifier as a run describes it: the network its config names, sized by its data set and wrapped to
take [0, 1] images (`Normalized`); saved as model.safetensors (weights and normalisation), model.json (name and
constructor arguments) and the run's config, and loaded back (`load_vision_run`)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import VisionRunConfig, check_vision_model, load_config, save_config
from ..data.vision import VISION_DATASETS
from ..errors import UsageError
from .registry import VISION_MODELS, build_vision_model

__all__ = [
    "WEIGHTS_FILE",
    "MODEL_FILE",
    "Normalized",
    "model_spec",
    "build_model",
    "input_channels",
    "save_vision_model",
    "load_vision_run",
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


def constructor_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments `cls(...)` takes: its own and, where it takes `**kwargs` (which it passes on to its
    base class), the base's that have a default (those without one the class supplies itself)."""
    params = dict(inspect.signature(cls).parameters)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return params
    own = {k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD}
    inherited = constructor_params(cls.__mro__[1])
    return {**own, **{k: p for k, p in inherited.items() if k not in own and p.default is not p.empty}}


def model_spec(cfg: VisionRunConfig) -> tuple[str, dict[str, Any]]:
    """(model name, constructor arguments): the shape arguments (in_features / in_channels, image_size, classes)
    come from the data set, the rest from the config's `model` section, checked against the constructor."""
    name = cfg.model["name"]
    if name not in VISION_MODELS:
        raise UsageError(f"unknown vision model '{name}' (choose from {', '.join(VISION_MODELS)})")
    if cfg.data.dataset not in VISION_DATASETS:
        raise UsageError(f"unknown dataset '{cfg.data.dataset}' (choose from {', '.join(VISION_DATASETS)})")
    channels, size, classes = VISION_DATASETS[cfg.data.dataset]
    params = constructor_params(VISION_MODELS[name])
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


def input_channels(kwargs: dict[str, Any], dataset: str) -> int:
    """The image channels a model built with `kwargs` takes: its `in_channels`, else (an MLP) the data set's."""
    return int(kwargs.get("in_channels", VISION_DATASETS.get(dataset, (1,))[0]))


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
    cfg = load_config(
        None, base=folder / "config.yaml", tasks=("vision",)
    )  # a model saved before task / train.backend too
    if spec["name"] not in VISION_MODELS:
        raise UsageError(f"'{folder / MODEL_FILE}' names an unknown model '{spec['name']}'")
    check_vision_model(spec["kwargs"])
    model = build_model(spec["name"], spec["kwargs"], input_channels(spec["kwargs"], cfg.data.dataset))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except Exception as err:  # noqa: BLE001 - not safetensors, or another model's weights
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UsageError(f"'{folder / WEIGHTS_FILE}' does not hold this model's weights ({first})") from None
    return model.eval(), cfg
