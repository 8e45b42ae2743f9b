"""The language-model job, in Accelerate's order: Accelerator -> data (main process first) -> seed -> model -> one
prepare -> (load_state) -> output folder + trackers -> the shared loop -> best model -> final evaluation ->
metrics.json. The output folder is written only once every error a user can cause has been raised: the checks in
`check_lm_run`, then those that need the data (sizes) or the checkpoint's content (load_state)."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader

from .. import runs
from ..algorithms import build_algorithm
from ..config import RunConfig, save_config
from ..data.collate import eval_collator, premask, train_collator
from ..data.lm1b import EMBEDDED_LM1B_DIR, check_lm1b_files, find_lm1b_files, load_lm1b, tokenize_lm1b
from ..errors import UsageError
from ..evaluation import load_perplexity
from ..evaluation.nll import per_sample_nll
from ..folders import RunFolder, check_overwritable, write_atomic
from ..models import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM
from ..models.hub import checkpoint_tokenizer
from ..models.value_nodes import error_depth, value_node_selector
from .accelerate_checks import check_accelerate_env, check_accelerator, flat_hparams
from .compiled import CompiledEnergy, check_compile
from .loop import Fit, FitState, check_resume, fit, read_state
from .model_card import write_model_card
from .processes import build_accelerator, end_processes, replica_digests
from .step import weight_groups
from .tracking import build_tracker

__all__ = ["train_lm", "check_lm_run", "default_tokenizer_dir", "evaluate_lm", "load_tokenizer", "mlm_masker"]

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


def check_lm_run(cfg: RunConfig, output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Every check a user can fail that needs neither the data nor a load, before anything is written.
    Returns the checkpoint to resume from."""
    algorithm = build_algorithm(
        cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount, x_grads=cfg.pc.x_grads
    )
    value_node_selector(cfg.pc.value_nodes)
    build_tracker(cfg.train.tracker, output_dir)
    _check_model_section(cfg)
    max_positions = int(cfg.model.get("max_position_embeddings", PCLMConfig().max_position_embeddings))
    if cfg.data.max_length > max_positions:
        raise UsageError(f"data.max_length={cfg.data.max_length} exceeds model.max_position_embeddings={max_positions}")
    if cfg.data.dev_size < 1:
        raise UsageError(f"data.dev_size must be >= 1 (the dev split picks the best epoch), got {cfg.data.dev_size}")
    check_lm1b_files(find_lm1b_files(cfg.data.data_dir or EMBEDDED_LM1B_DIR))  # opened and sampled
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    _check_vocabulary(cfg, tokenizer)
    if algorithm.uses_value_nodes:
        depth = error_depth(cfg.pc.value_nodes, int(cfg.model.get("num_hidden_layers", 2)))
        if depth > algorithm.reach:
            raise UsageError(
                f"pc.value_nodes='{cfg.pc.value_nodes}' puts {depth} value nodes on a chain but {cfg.algo} with "
                f"T={cfg.pc.inference_steps} reaches only {algorithm.reach}: the lowest weights would never learn"
            )
    if resume:
        with torch.device("meta"):
            model = MODELS[cfg.task](_model_config(cfg, tokenizer))
        return check_resume(output_dir, cfg.to_dict(), model)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output directory '{output_dir}' is a file")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"output directory '{output_dir}' is not empty (pass --overwrite or --resume)")
        check_overwritable(output_dir)
    return None


def _lm_data(cfg: RunConfig, tokenizer) -> dict[str, Any]:
    d = cfg.data
    raw = load_lm1b(
        d.data_dir or EMBEDDED_LM1B_DIR, d.train_size, d.dev_size, d.test_size, d.split_seed, cache_dir=d.cache_dir
    )
    data = dict(tokenize_lm1b(raw, tokenizer, d.max_length, cache_dir=d.cache_dir))
    if cfg.task == "mlm":
        for split in data:
            if split != "train":
                data[split] = premask(data[split], tokenizer, d.mlm_probability, d.eval_mask_seed)
    return data


def evaluate_lm(model: torch.nn.Module, loader, accelerator, causal: bool) -> dict[str, float]:
    """Perplexity and mean NLL over a split, every process's share gathered.

    Every process feeds the gathered per-sample values (each sample once, padding of the last batch dropped by
    `gather_for_metrics`) to its own in-memory metric, so all processes return the same score."""
    metric = load_perplexity()
    with torch.no_grad():
        for batch in loader:
            with accelerator.autocast():
                out = model(**batch)
            sums, counts = per_sample_nll(out.logits, batch["labels"], causal)
            sums, counts = accelerator.gather_for_metrics((sums, counts))
            metric.add_batch(nll_sum=sums.double().cpu().numpy(), count=counts.cpu().numpy())
    score = metric.compute()
    return {"ppl": score["perplexity"], "nll": score["nll"] if score["targets"] else 0.0, "targets": score["targets"]}


def mlm_masker(tokenizer, mlm_probability: float) -> Callable[[dict], dict]:
    """BERT masking of a padded training batch, drawn from the global CPU RNG when the loop takes the batch."""
    collator = train_collator("mlm", tokenizer, mlm_probability)

    def mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = batch["input_ids"].device
        input_ids, labels = collator.torch_mask_tokens(batch["input_ids"].cpu().clone())
        return {**batch, "input_ids": input_ids.to(device), "labels": labels.to(device)}

    return mask


def train_lm(
    cfg: RunConfig,
    output_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    cpu_info: dict | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Train one language model; returns (and writes) the content of metrics.json. `command` is the command line
    the model card names (default: this process's). The run folder is held by this process alone (`RunFolder`)
    from the first check to the end."""
    output_dir = Path(output_dir)
    with RunFolder(output_dir) as folder:
        return _train_lm(cfg, output_dir, resume, overwrite, cpu_info, folder, command)


def _train_lm(
    cfg: RunConfig,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    cpu_info: dict | None,
    folder: RunFolder,
    command: list[str] | None,
) -> dict[str, Any]:
    checkpoint = check_lm_run(cfg, output_dir, resume, overwrite)
    check_accelerate_env()
    accelerator = build_accelerator(
        log_with=build_tracker(cfg.train.tracker, output_dir),
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    check_compile(cfg.train.compile, accelerator)
    check_accelerator(
        accelerator,
        cfg.algo,
        build_algorithm(cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount).uses_value_nodes,
    )
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    with accelerator.main_process_first():
        try:
            data = _lm_data(cfg, tokenizer)  # raises UsageError on sizes the corpus cannot hold
        except OSError as err:  # data.cache_dir not writable, ...
            raise UsageError(f"cannot read or cache the data: {err.strerror or err} ({err.filename or ''})") from None
    set_seed(cfg.seed)

    model = MODELS[cfg.task](_model_config(cfg, tokenizer))
    algorithm = build_algorithm(
        cfg.algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount, x_grads=cfg.pc.x_grads
    )
    # fused: one kernel for all 40 tensors instead of a Python loop (about 10% of a masked BP step on CPU)
    optim_w = torch.optim.AdamW(
        weight_groups(model), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, betas=cfg.train.betas, fused=True
    )
    cols = ["input_ids"] + (["labels"] if cfg.task == "mlm" else [])
    # The collate function only pads (mlm masks are drawn by the loop, see `Fit.batch_transform`); the loader's own
    # generator keeps iterator creation from drawing on the global RNG, which a mid-epoch resume would shift.
    train_loader = DataLoader(
        data["train"].with_format(columns=["input_ids"]),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        collate_fn=train_collator("clm", tokenizer),
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    eval_loaders = {
        split: DataLoader(
            ds.with_format(columns=cols),
            batch_size=cfg.train.eval_batch_size,
            collate_fn=eval_collator(cfg.task, tokenizer),
        )
        for split, ds in data.items()
        if split != "train"
    }
    names = list(eval_loaders)
    model, optim_w, train_loader, *prepared = accelerator.prepare(model, optim_w, train_loader, *eval_loaders.values())
    eval_loaders = dict(zip(names, prepared))

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

    causal = cfg.task == "clm"
    sizes = {split: len(ds) for split, ds in data.items()}

    def write_metrics(st: FitState, status: str, final: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = {
            "task": cfg.task,
            "algo": cfg.algo,
            "seed": cfg.seed,
            "epochs_run": len(st.history),
            "init_dev_ppl": st.init_dev,
            "best_epoch": st.best_epoch,
            "best_dev_ppl": st.best,
            "history": st.history,
            "train_seconds": round(st.train_seconds, 2),
            "steps": st.global_step,
            "data_sizes": sizes,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "machine": {
                "platform": platform.platform(),
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                **(cpu_info or {}),
            },
            **(final or {}),
        }
        if accelerator.is_main_process:
            runs.write_metrics(output_dir, status, fields)
        return {"status": status, **fields}

    def save_best(unwrapped, path: Path, state_dict: dict) -> None:
        unwrapped.save_pretrained(path, state_dict=state_dict)
        checkpoint_tokenizer(tokenizer, unwrapped.config, causal=cfg.task == "clm").save_pretrained(path)

    job = Fit(
        model=model,
        optim_w=optim_w,
        algorithm=algorithm,
        select=value_node_selector(cfg.pc.value_nodes),
        train_loader=train_loader,
        dev_loader=eval_loaders["dev"],
        evaluate=lambda m, loader: evaluate_lm(m, loader, accelerator, causal),
        monitor="ppl",
        lower_is_better=True,
        save_best=save_best,
        epochs=cfg.train.epochs,
        patience=cfg.train.patience,
        max_steps=cfg.train.max_steps,
        checkpoint_every=cfg.train.checkpoint_every,
        log_every=cfg.train.log_every,
        write_metrics=write_metrics,
        batch_transform=mlm_masker(tokenizer, cfg.data.mlm_probability) if cfg.task == "mlm" else None,
        compiled=CompiledEnergy(accelerator.unwrap_model(model)) if cfg.train.compile else None,
        after_checkpoint=folder.commit,
    )
    started = time.perf_counter()
    status = fit(job, accelerator, output_dir, state)
    folder.commit()
    # every process's final weights, hashed: equal digests show the ranks trained one model
    final: dict[str, Any] = {
        "best_model": str(output_dir / "best") if state.best_epoch else None,
        "weights_sha256": replica_digests(accelerator, model),
    }
    if state.best_epoch:  # score the kept model, reloaded from disk, on every split
        best = MODELS[cfg.task].from_pretrained(output_dir / "best").to(accelerator.device).eval()
        for split, loader in eval_loaders.items():
            final[f"{split}_ppl"] = evaluate_lm(best, loader, accelerator, causal)["ppl"]
    final["wall_seconds"] = round(time.perf_counter() - started, 2)
    metrics = write_metrics(state, status, final)
    if state.best_epoch and accelerator.is_main_process:
        write_model_card(output_dir / "best", cfg, metrics, command or ["python", *sys.argv])
    del job, model, optim_w, train_loader, prepared, eval_loaders
    end_processes(accelerator)
    return metrics
