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
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .folders import write_atomic

__all__ = [
    "DataConfig",
    "TrainConfig",
    "PCConfig",
    "RunConfig",
    "load_config",
    "save_config",
    "check_lm_model",
    "LM_MODEL_MINIMA",
    "TEST_SOURCES",
    "parse_shards",
    "VisionDataConfig",
    "VisionTrainConfig",
    "VisionPCConfig",
    "VisionRunConfig",
    "TASKS",
    "upgrade_saved",
    "LM_BACKENDS",
    "VISION_BACKENDS",
]

TASKS = ("mlm", "clm", "vision")
# the command that trains each task: a config of another task given to a training command is one line naming it
_LM_COMMAND = "train_lm (pclm-train-lm / scripts/train_lm.py)"
_TRAINED_BY = {
    "mlm": _LM_COMMAND,
    "clm": _LM_COMMAND,
    "vision": "train_vision (pclm-train-vision / scripts/train_vision.py)",
}
TEST_SOURCES = ("auto", "shard", "pool")  # data.test: where the 1B Word test split comes from (pclm.data.lm1b)


def parse_shards(spec: str | None) -> set[int] | None:
    """ "10-12" / "1,4,7-9" -> the shard numbers; None -> None (every shard). UsageError on anything else."""
    if spec is None:
        return None
    numbers: set[int] = set()
    for part in str(spec).split(","):
        match = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?", part)
        if not match:
            raise UsageError(f"data.shards='{spec}' is not a list of shard numbers such as 10-12 or 1,4,7-9")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise UsageError(f"data.shards='{spec}': range {low}-{high} runs backwards")
        numbers.update(range(low, high + 1))
    return numbers


@dataclass
class DataConfig:
    data_dir: str | None = None  # 1B Word release root; None = the small sample embedded in the package
    tokenizer: str | None = None  # tokenizer folder; None = the repository's tokenizer/
    shards: str | None = None  # pool shard numbers to keep, e.g. "10-12" (pclm's earlier 18,202-sentence pool)
    test: str = "auto"  # shard (heldout 00000, the benchmark's test set), pool (test_size drawn), auto (shard if there)
    train_size: int | None = None  # None = every sentence left after dev and test
    dev_size: int | None = None  # None = 10,000 (the paper's) when the test is heldout 00000, else 1,000
    test_size: int = 3000  # used only when the test is drawn from the pool
    split_seed: int = 0
    max_length: int = 64  # longer sentences are truncated (their closing </s> kept), never dropped
    mlm_probability: float = 0.15
    eval_mask_seed: int = 1234  # fixed masking of dev/test, so masked-LM perplexities are comparable
    count_eos: bool = True  # conditional LM: </s> counts as a perplexity target (the reference counts no special token)
    cache_dir: str | None = None
    num_proc: int = 1  # processes that tokenise (the first run only: the result is cached)


@dataclass
class TrainConfig:
    epochs: int = 16
    batch_size: int = 128
    eval_batch_size: int = 256
    lr: float = 0.0008  # alpha, AdamW
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    patience: int = 3  # epochs without a better dev perplexity before stopping; 0 = never stop early
    max_steps: int | None = None  # stop after this many batches in all (smoke tests)
    checkpoint_every: int = 0  # batches between mid-epoch checkpoints; 0 = at epoch ends only
    checkpoint_minutes: float = 10.0  # also a checkpoint after this much training time; 0 = off
    log_every: int = 20
    tracker: str = "csv"  # csv (built in), tensorboard, wandb, ... any Accelerate tracker; "none" = off
    backend: str = "autograd"  # gradients: autograd, or compiled (torch.compile; one process; pclm.training.backends)
    epoch_eval: str = ""  # splits besides dev scored after every epoch, for the record only (e.g. "test")


@dataclass
class PCSection:
    """The `pc` section both runs share: T, gamma and the discount (a vision run's defaults); a language-model run
    adds which positions are value nodes (`PCConfig`)."""

    inference_steps: int = 8  # T
    inference_lr: float = 0.5  # gamma, SGD on value nodes
    discount: float | None = None  # PC: multiply gamma by this when the energy did not improve


VisionPCConfig = PCSection  # every hidden layer of a vision model is a value node: nothing to choose


@dataclass
class PCConfig(PCSection):
    inference_steps: int = 6  # T (the keys keep the shared section's order)
    value_nodes: str = "out+scores"  # see pclm.models.value_nodes
    x_grads: str = "sample"  # sample: each x moves by its own energy's gradient; batch: by the batch mean's


@dataclass
class _Run:
    """What every run's configuration holds: the task, the algorithm, the seed, and its plain-data form
    (config.json, config.yaml). `RunConfig` and `VisionRunConfig` add the task's data, model, train and pc sections."""

    task: str = "mlm"
    algo: str = "ipc"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out


@dataclass
class RunConfig(_Run):
    """A language model's run: task mlm or clm."""

    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    pc: PCConfig = field(default_factory=PCConfig)


@dataclass
class VisionDataConfig:
    dataset: str = "mnist"  # a key of pclm.data.vision.VISION_DATASETS
    data_dir: str | None = None  # None = ../shared/data/<dataset> when it exists (resolved by the CLI)
    train_size: int | None = None  # training images drawn (with split_seed) from what dev leaves; None = all
    dev_size: int = 5000  # held out from the training split, picks the best epoch; 0 = select on the test split
    test_size: int | None = None  # images drawn from the official test split; None = all
    split_seed: int = 0
    normalize: bool = True  # per-channel mean / std of the training images, stored with the model
    augment: bool = False  # training batches only: random crop (4-pixel zero padding) + horizontal flip


@dataclass
class VisionTrainConfig:
    epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int = 1000
    optimizer: str = "adamw"  # adamw, adam or sgd (weights only; value nodes always use plain SGD)
    lr: float = 0.0001  # alpha
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0  # sgd only
    patience: int = 0  # epochs without a better dev accuracy before stopping; 0 = never stop early
    max_steps: int | None = None
    checkpoint_every: int = 0
    checkpoint_minutes: float = 10.0
    log_every: int = 50
    tracker: str = "none"
    # gradients (pclm.training.backends): autograd, compiled (torch.compile) or closed_form (the MLP's mini-batch in
    # closed form, pclm.vision.closed_form); the last two in one process only
    backend: str = "autograd"


@dataclass
class VisionRunConfig(_Run):
    """A vision classifier's run: task vision."""

    task: str = "vision"
    data: VisionDataConfig = field(default_factory=VisionDataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    train: VisionTrainConfig = field(default_factory=VisionTrainConfig)
    pc: VisionPCConfig = field(default_factory=VisionPCConfig)


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


LM_BACKENDS = ("autograd", "compiled")
VISION_BACKENDS = ("autograd", "compiled", "closed_form")  # closed_form: the vision MLP only
# keys of earlier versions, each with the one line that says what took its place
_REPLACED = {
    f"train.{key}": f"train.{key} was replaced by train.backend (autograd|compiled|closed_form): train.{key}=true "
    f"is train.backend={backend}, false is the default, autograd"
    for key, backend in (("compile", "compiled"), ("fused", "closed_form"))
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
    old = [key for key in ("compile", "fused") if isinstance(train, dict) and key in train]
    untasked_vision = "task" not in saved and isinstance(data, dict) and "dataset" in data
    if not old and not untasked_vision:
        return saved
    saved = copy.deepcopy(saved)
    if untasked_vision:
        saved = {"task": "vision", **saved}
    if not old:
        return saved
    chosen = [
        backend
        for key, backend in (("compile", "compiled"), ("fused", "closed_form"))
        if saved["train"].pop(key, False)
    ]
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


# the lowest allowed value of each setting that breaks a run when out of range (dotted keys, as in _MAXIMA and
# _REAL_RULES): the train and pc keys both runs share, then each run's data keys
_SHARED_MINIMA = {
    **dict.fromkeys(("train.patience", "train.checkpoint_every"), 0),
    **dict.fromkeys(("train.epochs", "train.batch_size", "train.eval_batch_size", "train.log_every"), 1),
    **dict.fromkeys(("train.max_steps", "pc.inference_steps"), 1),
}
_MINIMA = {
    **_SHARED_MINIMA,
    **dict.fromkeys(("data.dev_size", "data.test_size"), 0),
    **dict.fromkeys(("data.train_size", "data.num_proc"), 1),
    "data.max_length": 2,  # a sentence is at least <s> </s>
}


# the largest value of an integer setting: a batch of a million sentences or images is beyond any run here (and a
# DataLoader cannot batch more than sys.maxsize); other counts stay within a 64-bit integer
BATCH_MAX = 2**20
_INT_MAX = 2**62
_MAXIMA = {"train.batch_size": BATCH_MAX, "train.eval_batch_size": BATCH_MAX}

_SEED_MAX = 2**32 - 1  # numpy's seeds (accelerate's set_seed) are 32-bit
# (dotted key, rule, test) for the real-valued settings; NaN fails every test, inf every bounded one
_OPEN, _UNIT = "a finite number > 0", "in [0, 1)"
_REAL_RULES = {
    "train.lr": (_OPEN, lambda v: 0 < v < math.inf),
    "train.weight_decay": ("a finite number >= 0", lambda v: 0 <= v < math.inf),
    "train.betas[0]": (_UNIT, lambda v: 0 <= v < 1),
    "train.betas[1]": (_UNIT, lambda v: 0 <= v < 1),
    "train.momentum": (_UNIT, lambda v: 0 <= v < 1),
    "pc.inference_lr": (_OPEN, lambda v: 0 < v < math.inf),
    "train.checkpoint_minutes": ("a finite number >= 0", lambda v: 0 <= v < math.inf),
    "pc.discount": ("in (0, 1]", lambda v: 0 < v <= 1),
    "data.mlm_probability": ("in (0, 1)", lambda v: 0 < v < 1),
}
# the sizes a language model is built from, and their least values (a stranger's config.json is checked against them
# by the evaluation command; a run's `model` section against PCLMConfig's own rules, `check_lm_model`)
LM_MODEL_MINIMA = {
    "vocab_size": 1,
    "hidden_size": 1,
    "num_hidden_layers": 1,
    "num_attention_heads": 1,
    "intermediate_size": 1,
    "max_position_embeddings": 2,
}


def _lookup(cfg: Any, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    node = getattr(cfg, section, None)
    if key.endswith("]"):
        key, index = key[:-1].split("[")
        values = getattr(node, key, None)
        return None if values is None else values[int(index)]
    return getattr(node, key, None) if node is not None else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_values(cfg: RunConfig | VisionRunConfig, minima: dict[str, int]) -> None:
    """Every value range the run relies on, checked before anything is read, deleted or written."""
    for where, low in minima.items():
        value = _lookup(cfg, where)
        if value is not None and value < low:
            raise UsageError(f"config key '{where}' must be >= {low}, got {value}")
        high = _MAXIMA.get(where, _INT_MAX)
        if value is not None and value > high:
            raise UsageError(f"config key '{where}' must be <= {high}, got {value}")
    for where in ("seed", "data.split_seed", "data.eval_mask_seed"):
        value = cfg.seed if where == "seed" else getattr(cfg.data, where.split(".")[1], None)
        if value is not None and not 0 <= value <= _SEED_MAX:
            raise UsageError(f"config key '{where}' must be in [0, {_SEED_MAX}], got {value}")
    for where, (rule, ok) in _REAL_RULES.items():
        value = _lookup(cfg, where)
        if value is not None and not ok(value):
            raise UsageError(f"config key '{where}' must be {rule}, got {value}")


def check_lm_model(model: dict[str, Any]) -> None:
    """Value ranges of a language model's `model` section, by PCLMConfig's own rules (`check_field`); types are
    checked against PCLMConfig by the job, which gives a hint for numbers YAML read as text."""
    from .models.configuration_pclm import CHOICES, ConfigFieldError, check_field

    for key, value in model.items():
        if not _is_number(value) and key not in CHOICES:
            continue
        try:
            check_field(key, value)
        except ConfigFieldError as err:
            raise UsageError(f"config key 'model.{key}' must be {err.rule}, got {value}") from None
        low = LM_MODEL_MINIMA.get(key)
        if low is not None and value < low:  # the run's own minima: a sentence is at least <s> </s>
            raise UsageError(f"config key 'model.{key}' must be >= {low}, got {value}")
        if _is_number(value) and value > _INT_MAX:
            raise UsageError(f"config key 'model.{key}' must be <= {_INT_MAX}, got {value}")


def check_vision_model(model: dict[str, Any]) -> None:
    """Every integer of a vision model's `model` section is a size (width, depth, channels, ...): at least 1."""
    for key, value in model.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) or (_is_number(v) and v < 1):
                raise UsageError(
                    f"config key 'model.{key}' must be a positive integer (or a list of them), got {value!r}"
                )


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
        _check_vision_run(cfg)
    else:
        cfg = _build(RunConfig, tree, "")
        _check_lm_run(cfg)
    return cfg


def _check_backend(cfg: RunConfig | VisionRunConfig, backends: tuple[str, ...], note: str = "") -> None:
    if cfg.train.backend not in backends:
        raise UsageError(
            f"config key 'train.backend' must be one of {', '.join(backends)}{note}, got {cfg.train.backend!r}"
        )


def _check_lm_run(cfg: RunConfig) -> None:
    """A language model's run, beyond its keys' types: value ranges, model sizes, backend, test split, epoch_eval."""
    _check_values(cfg, _MINIMA)
    check_lm_model(cfg.model)
    _check_backend(cfg, LM_BACKENDS, " (closed_form is the vision MLP's)")
    if cfg.data.test not in TEST_SOURCES:
        raise UsageError(f"config key 'data.test' must be one of {', '.join(TEST_SOURCES)}, got {cfg.data.test!r}")
    parse_shards(cfg.data.shards)
    splits = [s for s in cfg.train.epoch_eval.split(",") if s.strip()]
    unknown = [s for s in splits if s.strip() not in ("test", "test_sample")]
    if unknown:
        raise UsageError(f"config key 'train.epoch_eval' names '{unknown[0]}'; use test and/or test_sample")


_VISION_MINIMA = {**_SHARED_MINIMA, "data.dev_size": 0, "data.train_size": 1, "data.test_size": 1}


def _check_vision_run(cfg: VisionRunConfig) -> None:
    """A vision run, beyond its keys' types: the model's name and sizes, value ranges, optimiser, backend. The
    model's other keys are checked against its constructor when the run starts."""
    if not isinstance(cfg.model["name"], str):
        raise UsageError(f"config key 'model.name' must be str, got {cfg.model['name']!r}")
    _check_values(cfg, _VISION_MINIMA)
    check_vision_model({k: v for k, v in cfg.model.items() if k != "name"})
    if cfg.train.optimizer not in ("adamw", "adam", "sgd"):
        raise UsageError(f"config key 'train.optimizer' must be adamw, adam or sgd, got {cfg.train.optimizer!r}")
    _check_backend(cfg, VISION_BACKENDS)


def save_config(cfg: RunConfig | VisionRunConfig, path: str | Path) -> None:
    write_atomic(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))
