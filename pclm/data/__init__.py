"""Data pipelines: the 1B Word text corpus (Hugging Face ``datasets``), the language-model collators and the vision
data sets (`pclm.data.vision`, numpy / pyarrow only).

The text names are resolved on first use (PEP 562 `__getattr__`), so importing `pclm.data.vision` -- the vision
job's only need -- works on a machine without ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it (imported on first access)
_LAZY = {
    "eval_collator": "collate",
    "premask": "collate",
    "train_collator": "collate",
    "EMBEDDED_LM1B_DIR": "lm1b",
    "RELEASE_DIRNAME": "lm1b",
    "find_lm1b_files": "lm1b",
    "load_lm1b": "lm1b",
    "tokenize_lm1b": "lm1b",
}

__all__ = [
    "EMBEDDED_LM1B_DIR",
    "RELEASE_DIRNAME",
    "find_lm1b_files",
    "load_lm1b",
    "tokenize_lm1b",
    "eval_collator",
    "premask",
    "train_collator",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
