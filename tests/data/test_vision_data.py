"""Vision loaders on tiny fixture files written here (IDX .gz, a parquet of PNGs), and on the real files when the
shared data directory exists."""

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pclm.data.vision import load_cifar10_parquet, load_idx, load_idx_split
from pclm.errors import UsageError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_load_idx_fixture(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([7, 0, 9]))
    x, y = load_idx_split(tmp_path, "train")
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], torch.from_numpy(images / 255.0).float())  # exact pixel values, scaled to [0, 1]
    assert y.dtype == torch.int64 and y.tolist() == [7, 0, 9]


def test_load_idx_rejects_mismatch_and_missing(tmp_path):
    _write_idx(tmp_path / "i.gz", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "l.gz", np.zeros(2))
    with pytest.raises(UsageError, match="do not match"):
        load_idx(tmp_path / "i.gz", tmp_path / "l.gz")
    with pytest.raises(UsageError, match="not found"):
        load_idx(tmp_path / "nope.gz", tmp_path / "l.gz")
    with pytest.raises(UsageError, match="data directory not found"):
        load_idx_split(tmp_path / "missing")


def test_load_cifar10_parquet_fixture(tmp_path):
    from datasets import Dataset
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    blobs = []
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")  # lossless, so the decoded pixels are exact
        blobs.append({"bytes": buf.getvalue(), "path": None})
    Dataset.from_dict({"image": blobs, "label": [3, 1, 4, 1]}).to_parquet(str(tmp_path / "train.parquet"))
    x, y = load_cifar10_parquet(tmp_path, "train")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0)
    assert y.tolist() == [3, 1, 4, 1]
    x2, y2 = load_cifar10_parquet(tmp_path, "train", limit=2, seed=0)
    assert x2.shape[0] == 2 and all(any(torch.equal(a, b) for b in x) for a in x2)
    with pytest.raises(UsageError, match="not found"):
        load_cifar10_parquet(tmp_path, "test")
    with pytest.raises(UsageError, match="data directory not found"):
        load_cifar10_parquet(tmp_path / "missing")


@pytest.mark.skipif(not SHARED.exists(), reason="shared data directory not present")
def test_real_files():
    x, y = load_idx_split(SHARED / "fashion-mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0
    assert torch.bincount(y).tolist() == [1000] * 10
    x, y = load_cifar10_parquet(SHARED / "cifar10-jpeg", "test", limit=16, seed=0)
    assert x.shape == (16, 3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0 and y.max() <= 9
