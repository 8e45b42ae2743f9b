"""A vision data set as a run uses it: train / dev / test drawn from the official splits by seed and held in memory
as tensors (`vision_data`), and batches fetched with one index operation (`TensorBatches`)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..config import VisionRunConfig
from ..errors import UsageError
from .vision import load_vision_dataset

__all__ = ["vision_data", "TensorBatches"]


def _draw(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int, what: str):
    if n is None:
        return images, labels
    if n > len(images):
        raise UsageError(f"{what} asks for {n} images but only {len(images)} are available")
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[rows], labels[rows]


def vision_data(cfg: VisionRunConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "dev", "test"} -> (images (N, C, H, W) in [0, 1], labels (N,)). Dev is drawn from the official
    training split with `split_seed` and never trained on; train is drawn from the rest; test is the official test
    split (a subset with `test_size`). dev_size=0: dev IS the test split (benchmarks that report test per epoch)."""
    d = cfg.data
    images, labels = load_vision_dataset(d.dataset, d.data_dir, "train")
    if d.dev_size >= len(images):
        raise UsageError(f"data.dev_size={d.dev_size} leaves no training images (the split has {len(images)})")
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(d.split_seed))
    dev_rows, train_rows = rows[: d.dev_size], rows[d.dev_size :]
    if d.train_size is not None:
        if d.train_size > len(train_rows):
            raise UsageError(
                f"data.train_size={d.train_size} but only {len(train_rows)} training images are left "
                f"after dev ({d.dev_size})"
            )
        train_rows = train_rows[: d.train_size]
    test = _draw(*load_vision_dataset(d.dataset, d.data_dir, "test"), d.test_size, d.split_seed, "data.test_size")
    dev = (images[dev_rows], labels[dev_rows]) if d.dev_size else test
    return {"train": (images[train_rows].contiguous(), labels[train_rows]), "dev": dev, "test": test}


class TensorBatches(Dataset):
    """Images and labels held as two tensors. The DataLoader fetches a whole batch with one index operation
    (`__getitems__`) instead of one sample at a time and a stack."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[i], "labels": self.labels[i]}

    def __getitems__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(rows)
        return {"pixel_values": self.images[rows], "labels": self.labels[rows]}
