"""The model card (README.md with Hub metadata) that an LM run writes into its `best/` checkpoint."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig

__all__ = ["model_card", "write_model_card"]

_ALGORITHMS = {
    "bp": "backpropagation (BP)",
    "pc": "predictive coding (PC)",
    "ipc": "incremental predictive coding (iPC)",
}
_TASKS = {
    "mlm": ("masked language model", "fill-mask", "AutoModelForMaskedLM"),
    "clm": ("causal (conditional) language model", "text-generation", "AutoModelForCausalLM"),
}


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def model_card(cfg: RunConfig, metrics: dict[str, Any], command: list[str]) -> str:
    """README.md text: YAML metadata, then what trained the model (algorithm, PC settings, data, metrics, the
    command and the resolved config) and how to load it without pclm."""
    kind, pipeline_tag, auto = _TASKS[cfg.task]
    meta = {
        "library_name": "transformers",
        "license": "apache-2.0",
        "pipeline_tag": pipeline_tag,
        "tags": ["pclm", "predictive-coding", cfg.algo, cfg.task],
        "datasets": ["lm1b"],
        "metrics": ["perplexity"],
    }
    layer_norm = cfg.model.get("layer_norm", True)
    pc = (
        "none: trained by backpropagation"
        if cfg.algo == "bp"
        else f"T={cfg.pc.inference_steps} inference steps, x_lr (gamma)={cfg.pc.inference_lr}, "
        f"discount={cfg.pc.discount}, value nodes `{cfg.pc.value_nodes}`"
    )
    sizes = metrics.get("data_sizes", {})
    rows = [
        ("best epoch", metrics.get("best_epoch")),
        ("best dev perplexity", metrics.get("best_dev_ppl")),
        *((f"{split} perplexity", metrics[f"{split}_ppl"]) for split in sizes if f"{split}_ppl" in metrics),
        ("training steps", metrics.get("steps")),
        ("status", metrics.get("status")),
    ]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# pclm {cfg.algo.upper()} {cfg.task.upper()}",
        "",
        f"A small BERT-style {kind} trained with {_ALGORITHMS.get(cfg.algo, cfg.algo)} by pclm on 1B Word.",
        "",
        f"- algorithm: `{cfg.algo}`; PC settings: {pc}",
        f"- layer norm: {'on' if layer_norm else 'off'}; model: "
        + ", ".join(f"{k}={v}" for k, v in sorted(cfg.model.items())),
        "- data split (sentences): "
        + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
        + f"; max length {cfg.data.max_length} tokens; seed {cfg.seed}",
        f"- processes: {metrics.get('num_processes', 1)}; mixed precision: {metrics.get('mixed_precision', 'no')}",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_num(v)} |" for k, v in rows if v is not None),
        "",
        "Perplexities are on the split named; masked-LM perplexities score the masked positions only.",
        "",
        "## Command",
        "",
        "```",
        shlex.join(command),
        "```",
        "",
        "## Load",
        "",
        "With pclm installed, `import pclm.models` registers the model: `from_pretrained` then runs no code from this "
        "folder. Without pclm, `trust_remote_code=True` runs the folder's `modeling_pclm.py`: do that only for a folder "
        "you trust.",
        "",
        "```python",
        f"from transformers import AutoTokenizer, {auto}",
        f'model = {auto}.from_pretrained("path/to/best", trust_remote_code=True)',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/best", trust_remote_code=True)',
        "```",
        "",
        "## Resolved config",
        "",
        "```yaml",
        yaml.safe_dump(cfg.to_dict(), sort_keys=False).strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, cfg: RunConfig, metrics: dict[str, Any], command: list[str]) -> None:
    (Path(path) / "README.md").write_text(model_card(cfg, metrics, command))
