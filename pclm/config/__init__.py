"""Run configuration: YAML file -> dataclasses, dotted command-line overrides, strict keys, resolved YAML out.

One tree for every run, read by `load_config`; its `task` (mlm, clm or vision) decides the sections:
    task, algo, seed        what to train, with which algorithm, from which seed
    data                    mlm / clm: where the text is and how it is split and tokenised;
                            vision: data set name, its folder, train / dev / test subset sizes, normalisation
    model                   mlm / clm: PCLMConfig fields (hidden_size, layer_norm, ...);
                            vision: `name` (mlp, cnn, alexnet, width_cnn) plus that model's constructor arguments
    train                   epochs, batch size, weight optimiser, early stopping, checkpoints
    pc                      inference steps T, inference lr gamma, discount (mlm / clm: which positions are value nodes)
A language model's run is a `RunConfig`, a vision run a `VisionRunConfig`. Keys are documented in configs/README.md
and configs/vision/README.md.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..folders import write_atomic
from . import sections
from .checks import (
    BATCH_MAX,
    LM_MODEL_MINIMA,
    check_backend_name,
    check_lm_model,
    check_lm_run,
    check_vision_model,
    check_vision_run,
    parse_shards,
)
from .sections import *  # noqa: F403 (the sections, re-exported)
from .sections import TASKS, RunConfig, VisionRunConfig

__all__ = [
    *sections.__all__,
    "BATCH_MAX",
    "LM_MODEL_MINIMA",
    "check_backend_name",
    "check_lm_model",
    "check_vision_model",
    "load_config",
    "parse_shards",
    "save_config",
    "upgrade_saved",
]

# the command that trains each task: a config of another task given to a training command is one line naming it
_LM_COMMAND = "train_lm (pclm-train-lm / scripts/train_lm.py)"
_TRAINED_BY = {
    "mlm": _LM_COMMAND,
    "clm": _LM_COMMAND,
    "vision": "train_vision (pclm-train-vision / scripts/train_vision.py)",
}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the field's type `hint`; numbers written as text ("1e-3", which YAML does not read
    as a float) become floats, ints become floats where a float is expected."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is Any:
        return value
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)) and len(value) == len(args):
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if typing.get_origin(hint) is dict and isinstance(value, dict):
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise UsageError(f"config key '{where}' must be {expected}, got {value!r}")


# train keys of earlier versions -> the backend their `true` chose (false: autograd)
_OLD_BACKEND_KEYS = {"compile": "compiled", "fused": "closed_form"}
# keys of earlier versions, each with the one line that says what took its place
_REPLACED = {
    f"train.{key}": f"train.{key} was replaced by train.backend (autograd|compiled|closed_form): train.{key}=true "
    f"is train.backend={backend}, false is the default, autograd"
    for key, backend in _OLD_BACKEND_KEYS.items()
}


def upgrade_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config (config.json / config.yaml, as plain data) in today's keys, so that runs of earlier
    versions still resume and load: a vision run from before the `task` key (its `data` section names a `dataset`)
    gets `task: vision`; `train.compile` and `train.fused` of a run from before `train.backend` become the backend
    they chose (true: `compiled` / `closed_form`; false: `autograd`). Only saved configs are read this way: a user's
    config or command line with the old train keys gets `_REPLACED`'s one-line `UsageError`."""
    if not isinstance(saved, dict):
        return saved
    train, data = saved.get("train"), saved.get("data")
    old = [key for key in _OLD_BACKEND_KEYS if isinstance(train, dict) and key in train]
    untasked_vision = "task" not in saved and isinstance(data, dict) and "dataset" in data
    if not old and not untasked_vision:
        return saved
    saved = copy.deepcopy(saved)
    if untasked_vision:
        saved = {"task": "vision", **saved}
    if not old:
        return saved
    chosen = [backend for key, backend in _OLD_BACKEND_KEYS.items() if saved["train"].pop(key, False)]
    if len(chosen) > 1:
        raise UsageError("a saved config with train.compile and train.fused both true names two backends")
    saved["train"].setdefault("backend", chosen[0] if chosen else "autograd")
    return saved


def _build(cls, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise UsageError(f"config section '{where or 'top level'}' must be a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        name = f"{where}.{key}".lstrip(".")
        if name in _REPLACED:
            raise UsageError(_REPLACED[name])
        if key not in known:
            raise UsageError(f"unknown config key '{name}' (known: {', '.join(known)})")
        sub = known[key].default_factory if known[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub):
            value = _build(sub, {} if value is None else value, name)
        elif value is None and sub is dict:  # "model:" left empty in a YAML file
            value = {}
        else:
            value = _coerce(value, hints[key], name)
        kwargs[key] = value
    return cls(**kwargs)


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise UsageError(f"override '{path}': '{p}' is not a section")
    node[leaf] = value


def _set_dotted(tree: dict[str, Any], dotted: str) -> None:
    if "=" not in dotted:
        raise UsageError(f"override '{dotted}' is not of the form section.key=value")
    path, raw = dotted.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        raise UsageError(f"override '{dotted}': value is not valid YAML") from None
    _set(tree, path, value)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file '{path}' does not exist")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise UsageError(f"config file '{path}' is not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise UsageError(f"config file '{path}' cannot be read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise UsageError(f"config file '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of sections, got {type(tree).__name__}")
    return tree


def _read_tree(
    path: str | Path | None, overrides: list[str], flags: dict[str, Any], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    tree: dict[str, Any] = copy.deepcopy(base) if base is not None else {}
    if path is not None:
        tree = _read_yaml(path)
    if not isinstance(tree, dict):
        raise UsageError(f"a saved config must hold a mapping of sections, got {type(tree).__name__}")
    for item in overrides:
        _set_dotted(tree, item)
    for key, value in flags.items():
        if value is not None:
            _set(tree, key, value)
    return tree


def load_config(
    path: str | Path | None,
    overrides: list[str] = (),
    base: dict[str, Any] | str | Path | None = None,
    *,
    tasks: tuple[str, ...] = TASKS,
    **flags: Any,
) -> RunConfig | VisionRunConfig:
    """Read `path` (YAML), apply dotted `overrides` ("train.lr=0.001"), then the non-None `flags` (dotted keys:
    `task="vision"`, `algo="bp"`, `**{"data.data_dir": ...}`). `base` (a saved run's config, as plain data or the path
    of its config.yaml / config.json) stands in for the file, read through `upgrade_saved`. The `task` key decides
    the tree: mlm / clm -> `RunConfig`, vision -> `VisionRunConfig` (whose `model.name` defaults to mlp). `tasks`: the
    tasks the caller trains, the first when the config names none; any other is a one-line `UsageError` naming the
    command that trains it."""
    if isinstance(base, (str, Path)):
        base = _read_yaml(base)
    tree = _read_tree(path, overrides, flags, None if base is None else upgrade_saved(base))
    task = tree.setdefault("task", tasks[0])
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
    if task not in tasks:
        raise UsageError(f"task '{task}' is trained by {_TRAINED_BY[task]}")
    if task == "vision":
        model = tree.get("model")
        if model is not None and not isinstance(model, dict):
            raise UsageError(f"config section 'model' must be a mapping, got {model!r}")
        tree["model"] = {"name": "mlp", **(model or {})}
        cfg = _build(VisionRunConfig, tree, "")
        check_vision_run(cfg)
    else:
        cfg = _build(RunConfig, tree, "")
        check_lm_run(cfg)
    return cfg


def save_config(cfg: RunConfig | VisionRunConfig, path: str | Path) -> None:
    write_atomic(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))
