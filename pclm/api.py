"""The Python API: train any model that calls `nodes(...)` on a tokenised `datasets.Dataset` with BP, PC, iPC or
Z-IL, and score it, without the command line.

The same path as `scripts/train_lm.py`: one `Accelerator`, the shared loop (`pclm.training.loop.fit`, run with no
output folder) and its mini-batch step `train_batch`, the job's collators and masking, and its evaluation
(`evaluate_lm`: perplexity from per-sample NLL sums).

A model fits when its `forward(input_ids, attention_mask=None, labels=None, nodes=None)` calls `nodes(name, mu,
mask)` where value nodes may sit and `nodes.clamp_output(logits, targets)` at its output, and returns an object
with `.loss` (and `.logits` for `evaluate`: (B, T, V), or (N, V) at the labelled positions of a masked model), as
`PCLMForCausalLM` and `PCLMForMaskedLM` do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from datasets import Dataset
from torch.utils.data import DataLoader

from .algorithms import check_reach
from .config import DataConfig, PCConfig, TrainConfig
from .data.collate import eval_collator, premask, train_collator
from .errors import UsageError
from .models import PCLMForCausalLM, PCLMForMaskedLM
from .models.value_nodes import error_depth, value_node_selector
from .pc import EnergyFn
from .training.accelerate_checks import check_accelerate_env, check_accelerator
from .training.backends import Autograd
from .training.groups import optimizer_groups
from .training.job import build_fit, run_algorithm
from .training.lm import evaluate_lm, load_tokenizer, mlm_masker
from .training.loop import FitState, fit
from .training.processes import build_accelerator

__all__ = ["TrainResult", "train", "evaluate", "tokenize"]

TASKS = ("clm", "mlm")


@dataclass
class TrainResult:
    """What `train` returns. `model` is the object passed in (trained in place), unwrapped from Accelerate: with an
    `eval_dataset` (and `keep_best`), it holds the weights of the epoch with the best dev perplexity (`best_epoch`),
    as the command line's `best/` does; otherwise the last epoch's."""

    model: torch.nn.Module
    status: str  # a final status of pclm.runs: "completed", "early_stopped", "max_steps" or "diverged"
    steps: int  # mini-batches trained
    # per epoch: epoch, train_loss (mean feedforward loss), dev_ppl / dev_nll / dev_targets with an eval set,
    # train_seconds
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None  # epoch with the lowest dev perplexity (None without an eval set)
    best_dev_ppl: float | None = None
    init_dev_ppl: float | None = None  # the model's dev perplexity before training


def _task(model: torch.nn.Module, task: str | None) -> str:
    """ "clm" or "mlm": `task` when given, else the kind of a PCLMFor* model."""
    if task is not None:
        if task not in TASKS:
            raise UsageError(f"task must be 'clm' or 'mlm', got {task!r}")
        return task
    if isinstance(model, PCLMForCausalLM):
        return "clm"
    if isinstance(model, PCLMForMaskedLM):
        return "mlm"
    raise UsageError(f"pass task='clm' or task='mlm': {type(model).__name__} is not a PCLMFor* model")


def _tokenizer(tokenizer: Any, task: str) -> Any:
    """The tokenizer that pads (and masks) batches: the one given (or its folder), else pclm's own."""
    if tokenizer is None or isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer.pad_token_id is None:
        raise UsageError("the tokenizer has no padding token (batches are padded)")
    if task == "mlm" and tokenizer.mask_token_id is None:
        raise UsageError("the tokenizer has no mask token (task 'mlm' masks the inputs)")
    return tokenizer


def _columns(dataset: Any, what: str) -> list[str]:
    """The columns batches are built from: input_ids, and labels when the data set has them."""
    if not isinstance(dataset, Dataset):
        raise UsageError(f"{what} must be a datasets.Dataset, got {type(dataset).__name__}")
    if "input_ids" not in dataset.column_names:
        raise UsageError(
            f"{what} has no 'input_ids' column (tokenise it first, e.g. "
            "dataset.map(lambda b: tokenizer(b['text']), batched=True))"
        )
    if len(dataset) == 0:
        raise UsageError(f"{what} is empty")
    return ["input_ids"] + (["labels"] if "labels" in dataset.column_names else [])


def _accelerator(accelerator: Accelerator | None) -> Accelerator:
    if accelerator is None:
        check_accelerate_env()
        accelerator = build_accelerator(dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    return accelerator


def _eval_loader(
    dataset: Dataset,
    what: str,
    task: str,
    tokenizer: Any,
    batch_size: int,
    collate_fn: Callable | None,
    mlm_probability: float,
    eval_mask_seed: int,
) -> DataLoader:
    """Batches for scoring. A masked-LM set without labels is masked once with a fixed seed (`premask`), as the
    CLI's dev and test splits are, so every evaluation scores the same positions."""
    cols = _columns(dataset, what)
    if task == "mlm" and "labels" not in cols:
        dataset, cols = premask(dataset, tokenizer, mlm_probability, eval_mask_seed), ["input_ids", "labels"]
    if collate_fn is not None:
        return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn)
    collate = eval_collator("mlm" if "labels" in cols else task, tokenizer)  # labels given: padded with -100
    return DataLoader(dataset.with_format(columns=cols), batch_size=batch_size, collate_fn=collate)


def train(
    model: torch.nn.Module,
    train_dataset: Dataset,
    *,
    algorithm: str = "ipc",
    inference_steps: int = 4,
    inference_lr: float = 0.5,
    value_nodes: str | Callable[[str], EnergyFn | None] = "out+scores",
    x_grads: str = "sample",
    discount: float | None = None,
    lr: float = 1e-3,
    weight_decay: float = TrainConfig.weight_decay,
    betas: tuple[float, float] = TrainConfig.betas,
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = 1,
    max_steps: int | None = None,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = 0,
    task: str | None = None,
    tokenizer: Any = None,
    collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]] | None = None,
    mlm_probability: float = DataConfig.mlm_probability,
    eval_dataset: Dataset | None = None,
    eval_batch_size: int = 64,
    eval_mask_seed: int = DataConfig.eval_mask_seed,
    patience: int = 0,
    log_every: int = 20,
    keep_best: bool = True,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train `model` in place on `train_dataset` (a column `input_ids`; `labels` optional) with `algorithm`
    (bp, pc, ipc or zil) and return a `TrainResult`. Nothing is written to disk.

    Batches: padded with `tokenizer` (default pclm's; a folder or a tokenizer object) and labelled by `task`
    ("clm": labels = input ids; "mlm": BERT masking drawn per batch; default: the PCLMFor* model's kind). A
    data set with `labels` is used as given (padded with -100). `collate_fn` replaces all of that: it gets a list
    of rows and returns the model's keyword arguments as tensors.
    PC settings: `inference_steps` T, `inference_lr` gamma, `value_nodes` (a `pc.value_nodes` string, see
    `pclm.models.value_nodes`, or a function from node name to energy or None), `x_grads`, `discount` (PC).
    Weights: AdamW(`lr`, `weight_decay`, `betas`) over `pclm.training.groups.optimizer_groups` (for BP, BERT's
    no-decay group: biases and layer-norm weights without weight decay), or `optimizer`.
    `eval_dataset`: scored after every epoch (perplexity; a masked-LM set without labels is masked with
    `eval_mask_seed`); `patience` > 0 then stops after that many epochs without a better score, and with
    `keep_best` the model ends with the weights of its best epoch on it (kept in memory meanwhile).
    `seed`: seeds torch (masking, dropout) and the shuffling (None: leave the global RNG alone).
    `accelerator`: an `accelerate.Accelerator` to run under (default: a new one; launched processes train as one).
    """
    task = _task(model, task)
    tokenizer = _tokenizer(tokenizer, task)
    cols = _columns(train_dataset, "train_dataset")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    layers = getattr(model, "pc_layers", None)
    pc = PCConfig(inference_steps=inference_steps, inference_lr=inference_lr, discount=discount, x_grads=x_grads)
    algo = run_algorithm(algorithm, pc, len(layers()) if layers is not None else None)
    select = value_node_selector(value_nodes) if isinstance(value_nodes, str) else value_nodes
    config = getattr(model, "config", None)
    if isinstance(value_nodes, str) and getattr(config, "model_type", None) == "pclm":
        depth = error_depth(value_nodes, config.num_hidden_layers)
        check_reach(algo, algorithm, depth, f"value_nodes='{value_nodes}'", "inference_steps")
    accelerator = _accelerator(accelerator)
    check_accelerator(accelerator, algorithm, algo.uses_value_nodes)
    if seed is not None:
        set_seed(seed)

    transform = None
    if collate_fn is None:
        # labels given: pad them with -100; otherwise labels = input ids, masked by the loop for mlm (as the CLI)
        collate_fn = eval_collator("mlm", tokenizer) if "labels" in cols else train_collator("clm", tokenizer)
        if task == "mlm" and "labels" not in cols:
            transform = mlm_masker(tokenizer, mlm_probability)
        train_dataset = train_dataset.with_format(columns=cols)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    train_loader = DataLoader(
        train_dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_fn, generator=generator
    )
    dev_loader = (
        None
        if eval_dataset is None
        else _eval_loader(
            eval_dataset, "eval_dataset", task, tokenizer, eval_batch_size, None, mlm_probability, eval_mask_seed
        )
    )
    optim_w = optimizer or torch.optim.AdamW(
        optimizer_groups(model, algo, weight_decay), lr=lr, weight_decay=weight_decay, betas=betas
    )
    prepared = accelerator.prepare(model, optim_w, train_loader, *([dev_loader] if dev_loader is not None else []))
    wrapped, optim_w, train_loader = prepared[:3]
    dev_loader = prepared[3] if dev_loader is not None else None

    causal = task == "clm"
    best: dict[str, torch.Tensor] = {}

    def remember(m: torch.nn.Module) -> None:
        best.clear()
        best.update({k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(m).state_dict().items()})

    job = build_fit(
        TrainConfig(epochs=epochs, patience=patience, max_steps=max_steps, log_every=log_every),
        model=wrapped,
        optim_w=optim_w,
        algorithm=algo,
        backend=Autograd(select, accelerator),
        train_loader=train_loader,
        dev_loader=dev_loader,
        evaluate=lambda m, loader: evaluate_lm(m, loader, accelerator, causal),
        monitor="ppl",
        lower_is_better=True,
        save_best=lambda *args: None,
        batch_transform=transform,
        on_best=remember if keep_best and dev_loader is not None else None,
    )
    state = FitState()
    status = fit(job, accelerator, None, state)
    unwrapped = accelerator.unwrap_model(wrapped)
    if best:
        unwrapped.load_state_dict(best)
    return TrainResult(
        model=unwrapped,
        status=status,
        steps=state.global_step,
        history=state.history,
        best_epoch=state.best_epoch,
        best_dev_ppl=state.best,
        init_dev_ppl=state.init_dev,
    )


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    task: str | None = None,
    tokenizer: Any = None,
    batch_size: int = 64,
    collate_fn: Callable[[list[dict]], dict[str, torch.Tensor]] | None = None,
    mlm_probability: float = DataConfig.mlm_probability,
    eval_mask_seed: int = DataConfig.eval_mask_seed,
    count_eos: bool = DataConfig.count_eos,
    accelerator: Accelerator | None = None,
) -> dict[str, float]:
    """Perplexity of `model` on `dataset` (column `input_ids`, `labels` optional), as the CLI scores its dev and
    test splits: {"ppl", "nll" (mean per target, nats), "targets"}. Causal: every next-token prediction, and both
    counts beside (`ppl_eos_in` with `</s>` as a target, `ppl_eos_out` without it, the paper's); `count_eos` picks
    the one `ppl` is, as `data.count_eos` does in training. Masked: the labelled positions, or positions masked with
    `eval_mask_seed` when the set has no labels."""
    task = _task(model, task)
    tokenizer = _tokenizer(tokenizer, task)
    accelerator = _accelerator(accelerator)
    loader = accelerator.prepare_data_loader(
        _eval_loader(dataset, "dataset", task, tokenizer, batch_size, collate_fn, mlm_probability, eval_mask_seed)
    )
    training = model.training
    model.eval()
    try:
        causal = task == "clm"
        eos = tokenizer.eos_token_id if causal else None
        return evaluate_lm(
            accelerator.prepare_model(model, evaluation_mode=True), loader, accelerator, causal, eos, count_eos
        )
    finally:
        model.train(training)


def tokenize(texts: Any, *, max_length: int = 64, tokenizer: Any = None) -> Dataset:
    """Sentences as `train` and `evaluate` take them: a `Dataset` with `input_ids` (`<s> ... </s>`, cut to
    `max_length` tokens with `</s>` kept) and `length` (before the cut). `texts`: a list of strings, or a `Dataset` /
    `DatasetDict` with a column `text` (each split is tokenised). `tokenizer`: pclm's own (the repository's
    `tokenizer/`, 8001 BPE tokens) by default, or a folder or tokenizer object."""
    from datasets import DatasetDict

    from .data.lm1b import tokenize_lm1b

    tokenizer = _tokenizer(tokenizer, "clm")
    if isinstance(texts, (list, tuple)):
        if not all(isinstance(t, str) for t in texts):
            raise UsageError("texts must be strings (one sentence each)")
        return tokenize_lm1b(DatasetDict({"text": Dataset.from_dict({"text": list(texts)})}), tokenizer, max_length)[
            "text"
        ]
    if isinstance(texts, DatasetDict):
        return tokenize_lm1b(texts, tokenizer, max_length)
    if isinstance(texts, Dataset):
        if "text" not in texts.column_names:
            raise UsageError(f"the data set has no 'text' column (it has {', '.join(texts.column_names)})")
        return tokenize_lm1b(DatasetDict({"x": texts.select_columns(["text"])}), tokenizer, max_length)["x"]
    raise UsageError(f"texts must be a list of strings or a datasets.Dataset, got {type(texts).__name__}")
