"""The model card (README.md with Hub metadata, `huggingface_hub.ModelCard`) that an LM run writes into its `best/`
checkpoint: machine-readable results (`model-index`, one `EvalResult` per reported perplexity), what trained it, its
limitations and how to use it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

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
_SPLITS = {
    "dev": "dev sentences drawn from the pool",
    "test": "test split (heldout 00000, the benchmark's test set, when the data holds it)",
    "test_sample": "official 100-sentence sample of heldout 00000",
}
_USE = {
    "clm": [
        'generator = pipeline("text-generation", model=path, trust_remote_code=True)',
        'print(generator("the market", max_new_tokens=20, do_sample=False)[0]["generated_text"])',
    ],
    "mlm": [
        'unmasker = pipeline("fill-mask", model=path, trust_remote_code=True)',
        'print(unmasker("the <mask> rose on monday ."))',
    ],
}


def _eval_results(cfg: RunConfig, metrics: dict[str, Any], pipeline_tag: str) -> list[EvalResult]:
    """One result per split and perplexity count the run scored."""
    counts = {"ppl": None}
    if cfg.task == "clm":
        counts = {"ppl_eos_in": "counting </s>", "ppl_eos_out": "not counting </s>"}
    out = []
    for split, what in _SPLITS.items():
        for key, count in counts.items():
            value = metrics.get(f"{split}_{key}")
            if isinstance(value, (int, float)):
                out.append(
                    EvalResult(
                        task_type=pipeline_tag,
                        dataset_type="lm1b",
                        dataset_name=f"One Billion Word, {what}",
                        dataset_split=split,
                        metric_type="perplexity",
                        metric_name=f"perplexity ({count})" if count else "perplexity (masked tokens)",
                        metric_value=round(float(value), 4),
                    )
                )
    return out


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def model_card(cfg: RunConfig, metrics: dict[str, Any], command: list[str]) -> str:
    """README.md text: YAML metadata, then what trained the model (algorithm, PC settings, data, metrics, the
    command and the resolved config) and how to load it without pclm."""
    kind, pipeline_tag, auto = _TASKS[cfg.task]
    data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["pclm", "predictive-coding", cfg.algo, cfg.task],
        datasets=["lm1b"],
        metrics=["perplexity"],
        model_name=f"pclm-{cfg.task}-{cfg.algo}",
        eval_results=_eval_results(cfg, metrics, pipeline_tag) or None,
    )
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
        data.to_yaml(),
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
        "Perplexities are on the split named; masked-LM perplexities score the masked positions only; conditional-LM "
        f"perplexities {'count' if cfg.data.count_eos else 'leave out'} `</s>` (`model-index` holds both counts).",
        "",
        "## Limitations",
        "",
        "A research model, not a product: 2 transformer blocks of width "
        f"{cfg.model.get('hidden_size', 128)}, trained on {sizes.get('train', 0):,} English news sentences of 1B Word "
        f"(2007-2011 news crawl) cut to {cfg.data.max_length} tokens. Its perplexity is far above any modern language "
        "model's; its text is often ungrammatical and repeats itself; it knows nothing after its news crawl and carries "
        "that crawl's biases. It exists to compare training algorithms (BP, PC, iPC) at equal size, not to be used "
        "for generation or understanding.",
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
        f"from transformers import AutoTokenizer, {auto}, pipeline",
        'path = "path/to/best"',
        f"model = {auto}.from_pretrained(path, trust_remote_code=True)",
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)",
        *_USE[cfg.task],
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
    ModelCard(model_card(cfg, metrics, command)).save(Path(path) / "README.md")
