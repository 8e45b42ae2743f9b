"""Vision loaders on tiny fixture files written here (IDX .gz, a parquet of PNGs, CIFAR-10 pickle batches, an SVHN
.mat), and on the real files when the shared data directory exists. No real SVHN files exist in ../shared/data, so
SVHN is checked on fixtures only."""

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pclm.data.vision import (
    VISION_DATASETS,
    load_cifar10_parquet,
    load_cifar10_pickle,
    load_idx,
    load_idx_split,
    load_svhn_mat,
    load_vision_dataset,
)
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


def _write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fixture", b"data": data, b"labels": labels, b"filenames": []}, f)


def test_load_cifar10_pickle_fixture(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in range(1, 6):  # batch i holds one image whose bytes are all i, label i
        _write_cifar_batch(root / f"data_batch_{i}", np.full((1, 3072), i, dtype=np.uint8), [i])
    data = np.zeros((2, 3072), dtype=np.uint8)
    # row-major planes: byte c*1024 + h*32 + w is channel c, row h, column w
    data[1, 1 * 1024 + 2 * 32 + 5] = 255  # green, row 2, column 5 of the second image
    _write_cifar_batch(root / "test_batch", data, [9, 0])
    x, y = load_cifar10_pickle(tmp_path, "train")  # the parent of cifar-10-batches-py works too
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == [1, 2, 3, 4, 5] and torch.equal(x[:, 0, 0, 0], torch.arange(1, 6) / 255.0)
    x, y = load_vision_dataset("cifar10-pickle", root, "test")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [9, 0]
    assert x[1, 1, 2, 5] == 1.0 and x.sum() == 1.0 and 0.0 <= x.min() and x.max() <= 1.0


def test_load_cifar10_pickle_missing_and_corrupt(tmp_path):
    with pytest.raises(UsageError, match="data directory not found"):
        load_cifar10_pickle(tmp_path / "missing")
    with pytest.raises(UsageError, match="CIFAR-10 batch file not found: .*test_batch"):
        load_cifar10_pickle(tmp_path, "test")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="not a CIFAR-10 pickle batch: .*test_batch"):
        load_cifar10_pickle(tmp_path, "test")
    _write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(UsageError, match="bad CIFAR-10 batch shapes"):
        load_cifar10_pickle(tmp_path, "test")


class _CreatesFile:
    """Unpickled by plain `pickle.load`, this calls open(path, "w"): a file appears."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsCommand:
    """Unpickled by plain `pickle.load`, this runs `touch path` through os.system."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("payload", [_CreatesFile, _RunsCommand])
@pytest.mark.parametrize("where", ["data", "extra_key", "top"])
def test_cifar10_pickle_runs_no_code(tmp_path, payload, where):
    # The oracle: plain pickle.load of the same bytes does create the file (so the payload is live), while the
    # loader refuses it with one line and the file never appears.
    target = tmp_path / "pwned"
    evil = payload(target)
    batch = {b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [0]}
    obj = {"data": {**batch, b"data": evil}, "extra_key": {**batch, b"x": [evil]}, "top": evil}[where]
    raw = pickle.dumps(obj, protocol=2)
    (tmp_path / "test_batch").write_bytes(raw)
    with pytest.raises(UsageError) as info:
        load_cifar10_pickle(tmp_path, "test")
    assert not target.exists()
    name = "io.open" if payload is _CreatesFile else f"{os.system.__module__}.system"
    assert str(info.value) == f"not a CIFAR-10 pickle batch: {tmp_path / 'test_batch'} (refused to load '{name}')"
    result = pickle.loads(raw)  # the same bytes through plain pickle: the code runs
    if hasattr(result, "close"):
        result.close()
    assert target.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_pickle_protocols_load(tmp_path, protocol):
    # Arrays pickle differently by protocol (_reconstruct, _frombuffer, _codecs.encode for bytes under 2).
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(
            {b"batch_label": b"x", b"data": data, b"labels": [3, 4], b"filenames": [b"a", b"b"]}, f, protocol=protocol
        )
    x, y = load_cifar10_pickle(tmp_path, "test")
    assert y.tolist() == [3, 4] and torch.equal(
        (x * 255).round().to(torch.uint8).reshape(2, 3072), torch.from_numpy(data)
    )


def test_cifar10_pickle_wrong_kinds(tmp_path):
    for bad in (
        {b"data": [[0] * 3072], b"labels": [0]},  # a list, not an array
        {b"data": np.zeros((1, 3072), dtype=np.float32), b"labels": [0]},
        {b"labels": [0]},
        [1, 2],
    ):
        (tmp_path / "test_batch").write_bytes(pickle.dumps(bad))
        with pytest.raises(UsageError, match="not a CIFAR-10 pickle batch"):
            load_cifar10_pickle(tmp_path, "test")


def test_load_svhn_mat_fixture(tmp_path):
    from scipy.io import savemat

    X = np.zeros((32, 32, 3, 3), dtype=np.uint8)  # SVHN layout: (H, W, C, N)
    X[4, 7, 2, 1] = 255  # image 1, blue channel, row 4, column 7
    X[:, :, 0, 2] = 51  # image 2, the whole red channel 51/255 = 0.2
    savemat(str(tmp_path / "test_32x32.mat"), {"X": X, "y": np.array([[10], [3], [1]], dtype=np.uint8)})
    x, y = load_vision_dataset("svhn", tmp_path, "test")
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == [0, 3, 1]  # label 10 is the digit 0
    assert x[1, 2, 4, 7] == 1.0 and x[1].sum() == 1.0 and x[0].sum() == 0.0
    assert torch.equal(x[2, 0], torch.full((32, 32), 51 / 255.0)) and x[2, 1:].sum() == 0.0
    assert VISION_DATASETS["svhn"] == (3, 32, 10) and VISION_DATASETS["cifar10-pickle"] == (3, 32, 10)


def test_load_svhn_mat_missing_and_corrupt(tmp_path):
    from scipy.io import savemat

    with pytest.raises(UsageError, match="SVHN .mat file not found: .*train_32x32.mat"):
        load_vision_dataset("svhn", tmp_path, "train")
    with pytest.raises(UsageError, match="data directory not found"):
        load_vision_dataset("svhn", tmp_path / "missing", "train")
    (tmp_path / "bad.mat").write_bytes(b"\x00" * 200)
    with pytest.raises(UsageError, match="not an SVHN .mat file: .*bad.mat"):
        load_svhn_mat(tmp_path / "bad.mat")
    savemat(str(tmp_path / "nox.mat"), {"y": np.array([[1]])})
    with pytest.raises(UsageError, match="not an SVHN .mat file"):
        load_svhn_mat(tmp_path / "nox.mat")
    savemat(str(tmp_path / "short.mat"), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1]])})
    with pytest.raises(UsageError, match="bad SVHN arrays"):
        load_svhn_mat(tmp_path / "short.mat")


def test_load_vision_dataset_rejects_unknown(tmp_path):
    with pytest.raises(UsageError, match="unknown dataset 'imagenet'"):
        load_vision_dataset("imagenet", tmp_path)
    with pytest.raises(UsageError, match="unknown split"):
        load_vision_dataset("svhn", tmp_path, "val")


@pytest.mark.skipif(not SHARED.exists(), reason="shared data directory not present")
def test_real_files_through_dispatcher():
    for name in ("mnist", "fashion-mnist"):
        x, y = load_vision_dataset(name, SHARED / name, "test")
        assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert 0.0 <= x.min() and x.max() == 1.0 and sorted(y.unique().tolist()) == list(range(10))
    x, y = load_idx_split(SHARED / "mnist", "test")
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first MNIST test labels
