"""The language-model job: a `Task` of the shared job runner (`pclm.training.job.run_job`) that trains a masked or
causal PCLM on 1B Word, picks the best epoch by dev perplexity (lower is better), scores the kept model's perplexity
on every split and writes a model card into its `best/` folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..algorithms import Algorithm, check_reach
from ..config import RunConfig
from ..data.collate import eval_collator, premask, train_collator
from ..data.lm1b import (
    EMBEDDED_LM1B_DIR,
    check_lm1b_files,
    find_lm1b_files,
    load_lm1b,
    tokenize_lm1b,
    truncated_counts,
)
from ..errors import UsageError
from ..evaluation import load_perplexity
from ..evaluation.nll import per_sample_nll
from ..models import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM
from ..models.hub import checkpoint_tokenizer
from ..models.value_nodes import error_depth, value_node_selector
from .job import Task, check_run, run_algorithm, run_job
from .model_card import write_model_card

__all__ = ["train_lm", "check_lm_run", "LMTask", "default_tokenizer_dir", "evaluate_lm", "load_tokenizer", "mlm_masker"]

MODELS = {"mlm": PCLMForMaskedLM, "clm": PCLMForCausalLM}


def default_tokenizer_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "tokenizer"  # package data: the repository's tokenizer/


def load_tokenizer(path: str | Path | None):
    from transformers import AutoTokenizer

    path = Path(path) if path else default_tokenizer_dir()
    if not (path / "tokenizer.json").is_file():
        raise UsageError(f"tokenizer folder '{path}' has no tokenizer.json (set data.tokenizer)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001 - a corrupt tokenizer.json fails deep in tokenizers
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"tokenizer folder '{path}' does not load ({first[:200]})") from None
    if tokenizer.pad_token_id is None:
        raise UsageError(f"tokenizer in '{path}' has no padding token (batches are padded)")
    return tokenizer


def _model_config(cfg: RunConfig, tokenizer) -> PCLMConfig:
    return PCLMConfig(
        **{
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **cfg.model,
        }
    )


def _check_model_section(cfg: RunConfig) -> None:
    defaults = PCLMConfig().to_dict()
    unknown = set(cfg.model) - set(defaults)
    if unknown:
        raise UsageError(f"unknown config key 'model.{sorted(unknown)[0]}'")
    for key, value in cfg.model.items():
        default = defaults[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            hint = " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(value, str) else ""
            raise UsageError(f"config key 'model.{key}' must be {type(default).__name__}, got {value!r}{hint}")
    try:
        PCLMConfig(**cfg.model)
    except (TypeError, ValueError) as err:
        raise UsageError(f"bad model config: {err}") from None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_model_memory(config: PCLMConfig) -> None:
    """Refuse, before anything is allocated, a model whose weights, gradients and AdamW state (16 bytes a weight in
    float32) would not fit in this machine's memory."""
    h, i, v, n = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    weights = 2 * v * h + config.max_position_embeddings * h + n * (4 * h * h + 2 * h * i) + h * h
    need, have = 16 * weights, _memory_bytes()
    if have is not None and need > have:
        sizes = ", ".join(f"model.{k}={getattr(config, k)}" for k in ("hidden_size", "intermediate_size"))
        raise UsageError(
            f"{sizes}: {weights:,} weights need about {need / 2**30:.0f} GiB for weights, gradients and AdamW "
            f"state, more than this machine's {have / 2**30:.0f} GiB"
        )


def _check_vocabulary(cfg: RunConfig, tokenizer) -> None:
    """The model's vocabulary must hold every id the tokenizer produces, its special tokens included."""
    vocab = _model_config(cfg, tokenizer).vocab_size
    if vocab < len(tokenizer):
        raise UsageError(
            f"config key 'model.vocab_size' is {vocab}, smaller than the tokenizer's vocabulary "
            f"({len(tokenizer)}); leave it unset to take the tokenizer's"
        )
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(_model_config(cfg, tokenizer), key)
        if value is not None and not (isinstance(value, int) and 0 <= value < vocab):
            raise UsageError(f"{key} {value!r} is not an id of the {vocab}-token vocabulary (config or tokenizer)")


class LMTask(Task):
    """A masked (`mlm`) or causal (`clm`) language model on 1B Word, selected and scored by perplexity."""

    monitor = "ppl"
    lower_is_better = True

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.tokenizer = None  # loaded by `check`
        self.truncated: dict[str, int] = {}  # sentences cut to data.max_length, per split (set by `load_data`)
        # the conditional LM reports both perplexity counts; `ppl` is the one data.count_eos picks
        self.final_scores = ("ppl", "ppl_eos_in", "ppl_eos_out") if cfg.task == "clm" else ("ppl",)

    def check(self, output_dir: Path) -> Algorithm:
        cfg = self.cfg
        algorithm = run_algorithm(cfg.algo, cfg.pc)
        value_node_selector(cfg.pc.value_nodes)
        _check_model_section(cfg)
        max_positions = int(cfg.model.get("max_position_embeddings", PCLMConfig().max_position_embeddings))
        if cfg.data.max_length > max_positions:
            raise UsageError(
                f"data.max_length={cfg.data.max_length} exceeds model.max_position_embeddings={max_positions}"
            )
        if cfg.data.dev_size is not None and cfg.data.dev_size < 1:
            raise UsageError(
                f"data.dev_size must be >= 1 (the dev split picks the best epoch), got {cfg.data.dev_size}"
            )
        check_lm1b_files(find_lm1b_files(cfg.data.data_dir or EMBEDDED_LM1B_DIR, cfg.data.shards))  # opened, sampled
        self.tokenizer = load_tokenizer(cfg.data.tokenizer)
        _check_vocabulary(cfg, self.tokenizer)
        _check_model_memory(_model_config(cfg, self.tokenizer))
        depth = error_depth(cfg.pc.value_nodes, int(cfg.model.get("num_hidden_layers", 2)))
        check_reach(algorithm, cfg.algo, depth, f"pc.value_nodes='{cfg.pc.value_nodes}'", "pc.inference_steps")
        return algorithm

    def skeleton(self) -> torch.nn.Module:
        with torch.device("meta"):
            return MODELS[self.cfg.task](_model_config(self.cfg, self.tokenizer))

    def load_data(self) -> dict[str, Any]:
        try:
            data = _lm_data(self.cfg, self.tokenizer)  # raises UsageError on sizes the corpus cannot hold
            self.truncated = truncated_counts(data, self.cfg.data.max_length)
            return data
        except OSError as err:  # data.cache_dir not writable, ...
            raise UsageError(f"cannot read or cache the data: {err.strerror or err} ({err.filename or ''})") from None

    def build_model(self, data: dict[str, Any]) -> torch.nn.Module:
        return MODELS[self.cfg.task](_model_config(self.cfg, self.tokenizer))

    def train_loader(self, data: dict[str, Any]) -> DataLoader:
        # The collate function only pads (mlm masks are drawn by the loop, see `batch_transform`).
        return DataLoader(
            data["train"].with_format(columns=["input_ids"]),
            batch_size=self.cfg.train.batch_size,
            shuffle=True,
            collate_fn=train_collator("clm", self.tokenizer),
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def eval_sets(self, data: dict[str, Any]) -> dict[str, Any]:
        cols = ["input_ids"] + (["labels"] if self.cfg.task == "mlm" else [])
        return {
            split: DataLoader(
                ds.with_format(columns=cols),
                batch_size=self.cfg.train.eval_batch_size,
                collate_fn=eval_collator(self.cfg.task, self.tokenizer),
            )
            for split, ds in data.items()
            if split != "train"
        }

    def evaluate(self, model: torch.nn.Module, eval_set: Any, accelerator) -> dict[str, float]:
        eos = self.tokenizer.eos_token_id if self.cfg.task == "clm" else None
        return evaluate_lm(model, eval_set, accelerator, self.cfg.task == "clm", eos, self.cfg.data.count_eos)

    def epoch_eval(self) -> list[str]:
        return [s.strip() for s in self.cfg.train.epoch_eval.split(",") if s.strip()]

    def select(self) -> Callable:
        return value_node_selector(self.cfg.pc.value_nodes)

    def batch_transform(self) -> Callable[[Any], Any] | None:
        return mlm_masker(self.tokenizer, self.cfg.data.mlm_probability) if self.cfg.task == "mlm" else None

    def save_best(self, model: torch.nn.Module, path: Path, state_dict: dict) -> None:
        model.save_pretrained(path, state_dict=state_dict)
        checkpoint_tokenizer(self.tokenizer, model.config, causal=self.cfg.task == "clm").save_pretrained(path)

    def load_best(self, path: Path) -> torch.nn.Module:
        return MODELS[self.cfg.task].from_pretrained(path).eval()

    def data_sizes(self, data: dict[str, Any]) -> dict[str, int]:
        return {split: len(ds) for split, ds in data.items()}

    def identity(self) -> dict[str, Any]:
        return {"task": self.cfg.task, "algo": self.cfg.algo}

    def extra_fields(self, state) -> dict[str, Any]:
        return {
            "truncated": {"max_length": self.cfg.data.max_length, **self.truncated},
            "ppl_counts": "</s> in" if self.cfg.task == "mlm" or self.cfg.data.count_eos else "</s> out",
        }

    def finish(self, output_dir: Path, metrics: dict[str, Any], command: list[str] | None) -> None:
        write_model_card(output_dir / "best", self.cfg, metrics, command or ["python", *sys.argv])


def check_lm_run(cfg: RunConfig, output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Every check a user can fail that needs neither the data nor a load, before anything is written.
    Returns the checkpoint to resume from."""
    return check_run(LMTask(cfg), Path(output_dir), resume, overwrite)[1]


def _lm_data(cfg: RunConfig, tokenizer) -> dict[str, Any]:
    d = cfg.data
    raw = load_lm1b(
        d.data_dir or EMBEDDED_LM1B_DIR,
        d.train_size,
        d.dev_size,
        d.test_size,
        d.split_seed,
        cache_dir=d.cache_dir,
        shards=d.shards,
        test=d.test,
    )
    data = dict(tokenize_lm1b(raw, tokenizer, d.max_length, cache_dir=d.cache_dir, num_proc=d.num_proc))
    if cfg.task == "mlm":
        for split in data:
            if split != "train":
                data[split] = premask(data[split], tokenizer, d.mlm_probability, d.eval_mask_seed)
    return data


def evaluate_lm(
    model: torch.nn.Module, loader, accelerator, causal: bool, eos_id: int | None = None, count_eos: bool = True
) -> dict[str, float]:
    """Perplexity and mean NLL over a split, every process's share gathered.

    With `eos_id` (the conditional LM), both counts are scored: `ppl_eos_in` with `</s>` as a target, `ppl_eos_out`
    without it (the reference code's count: no special token is a target); `ppl`, `nll` and `targets` are the
    count `count_eos` picks. Every process feeds the gathered per-sample values (each sample once, padding of the
    last batch dropped by `gather_for_metrics`) to its own in-memory metric, so all processes return the same
    score."""
    counts_wanted = {"in": ()} if eos_id is None else {"in": (), "out": (eos_id,)}
    metrics = {name: load_perplexity() for name in counts_wanted}
    with torch.no_grad():
        for batch in loader:
            with accelerator.autocast():
                out = model(**batch)
            for name, drop in counts_wanted.items():
                sums, counts = per_sample_nll(out.logits, batch["labels"], causal, drop_ids=drop)
                sums, counts = accelerator.gather_for_metrics((sums, counts))
                metrics[name].add_batch(nll_sum=sums.double().cpu().numpy(), count=counts.cpu().numpy())
    scores = {name: metric.compute() for name, metric in metrics.items()}
    score = scores["in" if count_eos or eos_id is None else "out"]
    result = {"ppl": score["perplexity"], "nll": score["nll"] if score["targets"] else 0.0, "targets": score["targets"]}
    if eos_id is not None:
        result.update(ppl_eos_in=scores["in"]["perplexity"], ppl_eos_out=scores["out"]["perplexity"])
    return result


def mlm_masker(tokenizer, mlm_probability: float) -> Callable[[dict], dict]:
    """BERT masking of a padded training batch, drawn from the global CPU RNG when the loop takes the batch."""
    collator = train_collator("mlm", tokenizer, mlm_probability)

    def mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = batch["input_ids"].device
        input_ids, labels = collator.torch_mask_tokens(batch["input_ids"].cpu().clone())
        return {**batch, "input_ids": input_ids.to(device), "labels": labels.to(device)}

    return mask


def train_lm(cfg: RunConfig, output_dir: Path, **options: Any) -> dict[str, Any]:
    """Train one language model; returns (and writes) the content of metrics.json. `options`: `run_job`'s (resume,
    overwrite, cpu_info, and command, the command line the model card names: default this process's)."""
    return run_job(LMTask(cfg), output_dir, **options)
