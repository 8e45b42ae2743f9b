"""The sections of a run's configuration, as dataclasses: one tree whose `task` decides which sections a run has
(`RunConfig` for mlm / clm, `VisionRunConfig` for vision). Reading and checking them: `pclm.config`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DataConfig",
    "TrainConfig",
    "PCSection",
    "PCConfig",
    "RunConfig",
    "VisionDataConfig",
    "VisionTrainConfig",
    "VisionPCConfig",
    "VisionRunConfig",
    "TASKS",
    "TEST_SOURCES",
    "LM_BACKENDS",
    "VISION_BACKENDS",
]

TASKS = ("mlm", "clm", "vision")
TEST_SOURCES = ("auto", "shard", "pool")  # data.test: where the 1B Word test split comes from (pclm.data.lm1b)

LM_BACKENDS = ("autograd", "compiled")
VISION_BACKENDS = ("autograd", "compiled", "closed_form")  # closed_form: the vision MLP only


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
