"""Vision data sets from local files: MNIST / Fashion-MNIST IDX .gz files, CIFAR-10 as Hugging Face parquet or in the
original python-pickle batches, and SVHN (cropped digits) from the original `.mat` files.

The data directory is always an argument (a CLI flag in the scripts); nothing here reads the environment.
A missing file or directory raises `UsageError` with one line that names it.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

__all__ = [
    "load_idx",
    "load_idx_split",
    "load_cifar10_parquet",
    "load_cifar10_pickle",
    "load_svhn_mat",
    "load_vision_dataset",
    "VISION_DATASETS",
    "IDX_FILES",
    "CIFAR10_PICKLE_FILES",
    "SVHN_FILES",
]

# file names of the original releases (MNIST and Fashion-MNIST use the same ones)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# CIFAR-10 "python version" (cifar-10-python.tar.gz unpacked): five train batches and one test batch
CIFAR10_PICKLE_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
# SVHN format 2 (cropped 32x32 digits)
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} not found: {path} (pass the data directory, e.g. --data-dir ../shared/data/...)")
    return path


def _read_idx(path: Path) -> np.ndarray:
    """One IDX array (magic 0x0000TTNN: type TT, NN dims, then big-endian uint32 sizes and the data)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # not gzip, or a truncated stream
        raise UsageError(f"not a readable .gz IDX file: {path} ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UsageError(f"not an IDX file: {path}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UsageError(f"truncated IDX file: {path} (the header names {ndim} sizes)")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = len(raw) - 4 - 4 * ndim
    if body % dtype.itemsize:
        raise UsageError(f"truncated IDX file: {path} ({body} data bytes, not a whole number of values)")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"truncated IDX file: {path} (header says {shape}, found {data.size} values)")
    return data.reshape(shape)


def load_idx(images_gz: str | Path, labels_gz: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-style IDX files -> images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64."""
    images = _read_idx(_existing(images_gz, "IDX image file"))
    labels = _read_idx(_existing(labels_gz, "IDX label file"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(f"IDX shapes do not match: images {images.shape}, labels {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise UsageError(f"IDX labels must be integers, got {labels.dtype} in {labels_gz}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, H, W)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_idx_split(data_dir: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`load_idx` on the standard file names of `split` ("train" / "test") inside `data_dir`."""
    data_dir = _existing(data_dir, "data directory")
    images, labels = IDX_FILES[split]
    return load_idx(data_dir / images, data_dir / labels)


def load_cifar10_parquet(
    data_dir: str | Path, split: str = "train", limit: int | None = None, seed: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from Hugging Face parquet files (`{split}.parquet`: `image` JPEG/PNG bytes, `label`) ->
    images (N, 3, 32, 32) float32 in [0, 1] and labels (N,) int64. `limit` keeps N rows: the first N, or N drawn
    at random with `seed` (the files are sorted by class, so a subset should be drawn).

    Read with pyarrow and decoded with Pillow (no Hugging Face ``datasets``, which a training machine may lack). The
    `image` column is the ``datasets`` Image struct {bytes, path} or plain bytes."""
    import pyarrow.parquet as pq

    try:
        from PIL import Image
    except ImportError:
        raise UsageError(
            "decoding the CIFAR-10 parquet images needs Pillow (pip install pillow); or use the "
            "python-pickle batches (--dataset cifar10-pickle)"
        ) from None
    path = _existing(Path(_existing(data_dir, "data directory")) / f"{split}.parquet", "CIFAR-10 parquet file")
    try:
        return _decode_cifar10_parquet(pq.read_table(path, columns=["image", "label"]), data_dir, limit, seed, Image)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - not parquet, other columns, bytes that are no image, ...
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise UsageError(f"not a CIFAR-10 parquet file: {path} ({type(err).__name__}: {first})") from None


def _decode_cifar10_parquet(
    table, data_dir: str | Path, limit: int | None, seed: int | None, Image
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of a CIFAR-10 parquet table (`limit` of them) decoded to images and labels."""
    if limit is not None:
        rows = (
            range(table.num_rows)
            if seed is None
            else torch.randperm(table.num_rows, generator=torch.Generator().manual_seed(seed))
        )
        table = table.take([int(i) for i in rows[: min(limit, table.num_rows)]])

    def decode(cell) -> np.ndarray:
        if isinstance(cell, dict):
            data = cell.get("bytes")
            if data is None:  # an image file beside the parquet, never outside its folder
                root = Path(data_dir).resolve()
                image_path = (root / cell["path"]).resolve()
                if not image_path.is_relative_to(root):
                    raise UsageError(f"image path '{cell['path']}' leaves the data directory {root}")
                data = image_path.read_bytes()
        else:
            data = cell
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    images = np.stack([decode(c) for c in table.column("image").to_pylist()])  # (N, H, W, 3)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    return x.contiguous(), torch.tensor(table.column("label").to_pylist(), dtype=torch.int64)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as a Python 3 pickle of protocol 2 uses it for bytes: latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode is admitted only as latin1 of a str (protocol-2 bytes)")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2; the batches name numpy.core (numpy 1), which numpy 2 keeps only as a deprecated alias
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    names = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        names[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        names[(f"{core}.numeric", "_frombuffer")] = _frombuffer  # arrays pickled with protocol 5
    return names


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: dicts, lists, str/bytes, numbers and numpy arrays. Any other
    global (os.system, builtins.eval, ...) is refused before it is looked up, so a crafted file runs no code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        admitted = _numpy_globals().get((module, name))
        if admitted is None:
            raise pickle.UnpicklingError(f"refused to load '{module}.{name}'")
        return admitted


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: a dict with b"data" (N, 3072) uint8 (R, G, B planes of 32x32, row-major) and
    b"labels" (N,) -> images (N, 3, 32, 32) uint8 and labels (N,) int64. Read with `_ArrayUnpickler`."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise UsageError(f"not a CIFAR-10 pickle batch: {path} ({err})") from None
    except Exception as err:  # any other unpickling failure: truncated, not a pickle at all
        raise UsageError(f"not a CIFAR-10 pickle batch: {path} ({type(err).__name__})") from None
    try:
        raw_data, raw_labels = batch[b"data"], batch[b"labels"]
        if not isinstance(raw_data, np.ndarray) or raw_data.dtype != np.uint8:
            raise TypeError("b'data' is not a uint8 array")
        data = raw_data
        labels = np.asarray(raw_labels, dtype=np.int64)
    except Exception as err:  # a missing key, or values of the wrong kind
        raise UsageError(f"not a CIFAR-10 pickle batch: {path} ({type(err).__name__}: {err})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise UsageError(f"bad CIFAR-10 batch shapes in {path}: data {data.shape}, labels {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10_pickle(data_dir: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 in the original python-pickle layout (`data_dir` is `cifar-10-batches-py/` or its parent) ->
    images (N, 3, 32, 32) float32 in [0, 1] and labels (N,) int64, train batches 1..5 concatenated in order."""
    data_dir = _existing(data_dir, "data directory")
    if (data_dir / "cifar-10-batches-py").is_dir():
        data_dir = data_dir / "cifar-10-batches-py"
    parts = [
        _read_cifar10_batch(_existing(data_dir / name, "CIFAR-10 batch file")) for name in CIFAR10_PICKLE_FILES[split]
    ]
    images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels)


def load_svhn_mat(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN `.mat` file (X (32, 32, 3, N) uint8, y (N, 1) with 10 meaning the digit 0) ->
    images (N, 3, 32, 32) float32 in [0, 1] and labels (N,) int64 in 0..9."""
    from scipy.io import loadmat  # only needed for SVHN

    path = _existing(path, "SVHN .mat file")
    try:
        mat = loadmat(str(path))
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except Exception as err:  # not a MAT file, truncated, or without X / y
        raise UsageError(f"not an SVHN .mat file: {path} ({type(err).__name__})") from None
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y) or not ((y >= 0) & (y <= 10)).all():
        raise UsageError(f"bad SVHN arrays in {path}: X {x.shape}, y {y.shape}")
    y[y == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(y)


# name -> (channels, image size, classes); the loaders below return images (N, C, H, W) in [0, 1]
VISION_DATASETS = {
    "mnist": (1, 28, 10),
    "fashion-mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar10-pickle": (3, 32, 10),
    "svhn": (3, 32, 10),
}


def load_vision_dataset(name: str, data_dir: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Split "train" / "test" of the data set `name` (a key of VISION_DATASETS) stored in `data_dir`."""
    if name not in VISION_DATASETS:
        raise UsageError(f"unknown dataset '{name}' (choose from {', '.join(VISION_DATASETS)})")
    if split not in ("train", "test"):
        raise UsageError(f"unknown split '{split}' (train or test)")
    if name in ("mnist", "fashion-mnist"):
        images, labels = load_idx_split(data_dir, split)
    elif name == "cifar10-pickle":
        images, labels = load_cifar10_pickle(data_dir, split)
    elif name == "svhn":
        images, labels = load_svhn_mat(Path(_existing(data_dir, "data directory")) / SVHN_FILES[split])
    else:
        images, labels = load_cifar10_parquet(data_dir, split)
    channels, size, classes = VISION_DATASETS[name]
    if tuple(images.shape[1:]) != (channels, size, size):
        raise UsageError(
            f"the {split} images in '{data_dir}' are {tuple(images.shape[1:])} (C, H, W), not "
            f"{(channels, size, size)} as {name} images are"
        )
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise UsageError(
            f"the {split} labels in '{data_dir}' run from {int(labels.min())} to {int(labels.max())}; "
            f"{name} has classes 0..{classes - 1}"
        )
    return images, labels
