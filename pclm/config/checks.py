"""The value rules of a run's configuration, beyond its keys' types: ranges, sizes, choices. Each is checked before a
run reads, deletes or writes anything; a broken rule is one `UsageError` line naming the key."""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import UsageError
from .sections import LM_BACKENDS, TEST_SOURCES, VISION_BACKENDS, RunConfig, VisionRunConfig

__all__ = [
    "BATCH_MAX",
    "LM_MODEL_MINIMA",
    "check_lm_model",
    "check_lm_run",
    "check_vision_model",
    "check_vision_run",
    "parse_shards",
]


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
    from ..models.configuration_pclm import CHOICES, ConfigFieldError, check_field

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


def check_backend_name(name: str, backends: tuple[str, ...] = VISION_BACKENDS, note: str = "") -> None:
    """The one check of `train.backend`: a one-line `UsageError` unless `name` is one of `backends` (every backend
    by default; a language model's run allows `LM_BACKENDS`)."""
    if name not in backends:
        raise UsageError(f"config key 'train.backend' must be one of {', '.join(backends)}{note}, got {name!r}")


def check_lm_run(cfg: RunConfig) -> None:
    """A language model's run, beyond its keys' types: value ranges, model sizes, backend, test split, epoch_eval."""
    _check_values(cfg, _MINIMA)
    check_lm_model(cfg.model)
    check_backend_name(cfg.train.backend, LM_BACKENDS, " (closed_form is the vision MLP's)")
    if cfg.data.test not in TEST_SOURCES:
        raise UsageError(f"config key 'data.test' must be one of {', '.join(TEST_SOURCES)}, got {cfg.data.test!r}")
    parse_shards(cfg.data.shards)
    splits = [s for s in cfg.train.epoch_eval.split(",") if s.strip()]
    unknown = [s for s in splits if s.strip() not in ("test", "test_sample")]
    if unknown:
        raise UsageError(f"config key 'train.epoch_eval' names '{unknown[0]}'; use test and/or test_sample")


_VISION_MINIMA = {**_SHARED_MINIMA, "data.dev_size": 0, "data.train_size": 1, "data.test_size": 1}


def check_vision_run(cfg: VisionRunConfig) -> None:
    """A vision run, beyond its keys' types: the model's name and sizes, value ranges, optimiser, backend. The
    model's other keys are checked against its constructor when the run starts."""
    if not isinstance(cfg.model["name"], str):
        raise UsageError(f"config key 'model.name' must be str, got {cfg.model['name']!r}")
    _check_values(cfg, _VISION_MINIMA)
    check_vision_model({k: v for k, v in cfg.model.items() if k != "name"})
    if cfg.train.optimizer not in ("adamw", "adam", "sgd"):
        raise UsageError(f"config key 'train.optimizer' must be adamw, adam or sgd, got {cfg.train.optimizer!r}")
    check_backend_name(cfg.train.backend, VISION_BACKENDS)
