"""pclm: predictive-coding language models (PC, iPC, BP) on Hugging Face transformers.

The model classes load on first use (`from pclm import PCLMForCausalLM`, or `import pclm.models`), which also
registers model_type "pclm" with AutoConfig / AutoModelForMaskedLM / AutoModelForCausalLM; `import pclm` alone
stays light, so command-line tools answer `--help` without loading torch. `pclm.train` / `pclm.evaluate` (the
Python API, `pclm.api`) load the same way."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = [
    "PCLMConfig",
    "PCLMModel",
    "PCLMForMaskedLM",
    "PCLMForCausalLM",
    "train",
    "evaluate",
    "TrainResult",
    "tokenize",
    "PACKAGE_DIR",
    "__version__",
]

PACKAGE_DIR = Path(__file__).resolve().parent  # holds tokenizer/ and configs/ (the repository's, as package data)
_LAZY = {
    "PCLMConfig": "pclm.models",
    "PCLMModel": "pclm.models",
    "PCLMForMaskedLM": "pclm.models",
    "PCLMForCausalLM": "pclm.models",
    "train": "pclm.api",
    "evaluate": "pclm.api",
    "TrainResult": "pclm.api",
    "tokenize": "pclm.api",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pclm' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
