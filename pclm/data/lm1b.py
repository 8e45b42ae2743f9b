"""One Billion Word Benchmark (Chelba et al., 2013) as Hugging Face ``datasets``.

The loader reads the release layout (``1-billion-word-language-modeling-benchmark-r13output/``)::

    training-monolingual.tokenized.shuffled/news.en-000NN-of-00100[.gz]        training shards
    heldout-monolingual.tokenized.shuffled/news.en.heldout-000NN-of-00050[.gz] heldout shards
    samples/heldout-00000.sample100.ordered.txt[.gz]                            official 100-sentence sample

Split rule (seeded, disjoint by construction because every split is a disjoint set of row indices):

- pool: the training shards if there are any, else the heldout shards other than 00000; ``shards`` ("10-12",
  "1,4,7-9") keeps only those shard numbers of it. Empty lines are dropped.
- test (``test``): ``"shard"`` is heldout shard 00000, the benchmark's test set, whole (``test_size`` unused);
  ``"pool"`` is ``test_size`` sentences drawn from the pool; ``"auto"`` (default) is ``"shard"`` when shard
  00000 is there, else ``"pool"``.
- dev: ``dev_size`` sentences drawn from the rest of the pool; ``None`` (default) is the paper's 10,000 when the
  test is shard 00000, else 1,000.
- train: ``train_size`` sentences drawn from what is left (``None``: all of it).
- test_sample: the official 100-sentence sample of heldout 00000, when present (it never overlaps
  the pool, which excludes shard 00000).

The draw is one ``numpy.random.default_rng(seed).permutation`` of the pool, cut in order
(test, dev, train); each split keeps corpus order. Sizes are never clamped: a pool too small for the
sizes asked raises ``UsageError``.

Sizes with the defaults:

- ``../shared/data/lm1b`` (47 heldout shards besides 00000, 288,404 sentences, and shard 00000): the paper's
  protocol, train 278,404 / dev 10,000 / test 6,075 (heldout 00000) / test_sample 100.
- the same with ``shards="10-12", test="pool"``: the 18,202-sentence pool of pclm's earlier reports,
  train 14,202 / dev 1,000 / test 3,000 / test_sample 100.
- the embedded sample ``EMBEDDED_LM1B_DIR`` (4,000 sentences from each of heldout shards 10-12, no shard 00000):
  train 8,000 / dev 1,000 / test 3,000 / test_sample 100.
- the full release (99 training shards, heldout shard 00000): train ~30.3M / dev 10,000 /
  test = all of heldout 00000 / test_sample 100.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, load_dataset
from datasets.fingerprint import Hasher

from pclm.config import TEST_SOURCES, parse_shards
from pclm.errors import UsageError

__all__ = [
    "EMBEDDED_LM1B_DIR",
    "RELEASE_DIRNAME",
    "TEST_SOURCES",
    "parse_shards",
    "find_lm1b_files",
    "check_lm1b_files",
    "load_lm1b",
    "tokenize_lm1b",
    "truncated_counts",
]

EMBEDDED_LM1B_DIR: Path = Path(__file__).resolve().parent / "lm1b_sample"
RELEASE_DIRNAME = "1-billion-word-language-modeling-benchmark-r13output"

_TRAIN_DIR = "training-monolingual.tokenized.shuffled"
_HELDOUT_DIR = "heldout-monolingual.tokenized.shuffled"
_SAMPLE = "samples/heldout-00000.sample100.ordered.txt"
_TRAIN_RE = re.compile(r"^news\.en-(\d{5})-of-00100(\.gz)?$")
_HELDOUT_RE = re.compile(r"^news\.en\.heldout-(\d{5})-of-00050(\.gz)?$")
_SETTING = "set --data-dir or data.data_dir"
PAPER_DEV_SIZE = 10_000  # the paper's dev set (App. D.3), when the benchmark's test shard is the test set
POOL_DEV_SIZE = 1_000


def _shards(directory: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """Shard number -> file; when both ``x`` and ``x.gz`` exist the uncompressed one wins."""
    found: dict[int, Path] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        match = pattern.match(path.name)
        if match and path.is_file():
            number = int(match.group(1))
            if number not in found or not match.group(2):
                found[number] = path
    return found


def _release_root(data_dir: Path) -> Path:
    """``data_dir`` itself, or the release folder inside it if ``data_dir`` is its parent."""
    nested = data_dir / RELEASE_DIRNAME
    own = (data_dir / _TRAIN_DIR).is_dir() or (data_dir / _HELDOUT_DIR).is_dir()
    return nested if not own and nested.is_dir() else data_dir


def find_lm1b_files(data_dir: str | Path, shards: str | None = None) -> dict[str, list[Path]]:
    """Locate the 1B Word files under ``data_dir`` (the release root, or the folder holding it).

    Returns lists of paths sorted by shard number, under the keys
    ``"train"`` (training shards), ``"heldout"`` (heldout shards other than 00000),
    ``"test"`` (heldout shard 00000, or empty) and ``"test_sample"`` (the 100-sentence sample, or empty).
    ``shards`` keeps only those numbers of the pool's shards (the training shards, else the heldout ones);
    shard numbers it names that are not there are an error.
    Raises ``UsageError`` when the directory is missing or holds no shard.
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.exists():
        raise UsageError(f"data directory '{data_dir}' does not exist ({_SETTING})")
    if not data_dir.is_dir():
        raise UsageError(f"data directory '{data_dir}' is not a directory ({_SETTING})")
    root = _release_root(data_dir)
    train = _shards(root / _TRAIN_DIR, _TRAIN_RE)
    heldout = _shards(root / _HELDOUT_DIR, _HELDOUT_RE)
    if not train and not heldout:
        raise UsageError(
            f"data directory '{data_dir}' holds no 1B Word shards (expected {_TRAIN_DIR}/news.en-*-of-00100 "
            f"or {_HELDOUT_DIR}/news.en.heldout-*-of-00050; {_SETTING})"
        )
    test = heldout.pop(0, None)
    wanted = parse_shards(shards)
    if wanted is not None:
        pool = train or heldout
        missing = sorted(wanted - set(pool))
        if missing:
            kind = "training" if train else "heldout (other than 00000)"
            raise UsageError(
                f"data.shards='{shards}' names {kind} shard {missing[0]:05d}, which '{data_dir}' does not hold "
                f"(it holds {len(pool)}: {_ranges(sorted(pool))})"
            )
        for k in set(pool) - wanted:
            del pool[k]
    samples = [root / _SAMPLE, root / f"{_SAMPLE}.gz"]
    return {
        "train": [train[k] for k in sorted(train)],
        "heldout": [heldout[k] for k in sorted(heldout)],
        "test": [test] if test is not None else [],
        "test_sample": [p for p in samples if p.is_file()][:1],
    }


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3,5"."""
    out: list[str] = []
    for n in numbers:
        if out and int(out[-1].split("-")[-1]) == n - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ",".join(out)


_SAMPLE_BYTES = 1 << 20


def check_lm1b_files(files: dict[str, list[Path]]) -> None:
    """Open every file `find_lm1b_files` found and decode its first MiB as UTF-8 text; a `.gz` one is read to its
    end, so a truncated stream is found too. UsageError naming the first file that is empty, unreadable, not gzip,
    truncated, binary or not UTF-8."""
    for path in (p for paths in files.values() for p in paths):
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as f:
                    head = f.read(_SAMPLE_BYTES)
                    while f.read(1 << 24):  # decompress to the end: a truncated stream raises EOFError
                        pass
            else:
                with open(path, "rb") as f:
                    head = f.read(_SAMPLE_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            raise UsageError(f"1B Word file '{path}' cannot be read ({err})") from None
        if not head.strip():
            raise UsageError(f"1B Word file '{path}' is empty")
        try:  # a multi-byte character cut at the sample's end is not an error
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SAMPLE_BYTES)
        except UnicodeDecodeError as err:
            raise UsageError(f"1B Word file '{path}' is not UTF-8 text (byte {err.start}: {err.reason})") from None
        if b"\0" in head:
            raise UsageError(f"1B Word file '{path}' is binary, not text (it holds NUL bytes)")


def _nonempty(batch: dict[str, list[str]]) -> list[bool]:
    """Keep the non-empty lines; a NUL byte anywhere (`check_lm1b_files` reads only each file's first MiB) is an
    error: the file is binary, not text. Runs once per file version (datasets caches the filtered split)."""
    if any("\0" in text for text in batch["text"]):
        raise ValueError("a line holds a NUL byte: binary, not text")
    return [bool(text.strip()) for text in batch["text"]]


def _check_sizes(train_size: int | None, dev_size: int | None, test_size: int) -> None:
    for name, value in (("dev_size", dev_size), ("test_size", test_size)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must be >= 0, got {value} (set data.{name})")
    if train_size is not None and train_size < 1:
        raise UsageError(f"train_size must be >= 1 or None (all the rest), got {train_size} (set data.train_size)")


def load_lm1b(
    data_dir: str | Path = EMBEDDED_LM1B_DIR,
    train_size: int | None = None,
    dev_size: int | None = None,
    test_size: int = 3000,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    shards: str | None = None,
    test: str = "auto",
) -> DatasetDict:
    """Load 1B Word as a ``DatasetDict`` with one column ``"text"`` (one sentence a row).

    Splits ``"train"``, ``"dev"``, ``"test"`` and, when the release has it, ``"test_sample"``; the split
    rule is in the module docstring. ``cache_dir`` is passed to ``datasets.load_dataset``
    (``None``: the ``datasets`` default cache). Raises ``UsageError`` on a bad directory or sizes
    the pool cannot hold.
    """
    _check_sizes(train_size, dev_size, test_size)
    if test not in TEST_SOURCES:
        raise UsageError(f"data.test must be one of {', '.join(TEST_SOURCES)}, got {test!r}")
    files = find_lm1b_files(data_dir, shards)
    if test == "shard" and not files["test"]:
        raise UsageError(f"data.test='shard' but '{data_dir}' has no heldout shard 00000 (the benchmark's test set)")
    if test == "pool" or (test == "auto" and not files["test"]):
        files["test"] = []
    if dev_size is None:
        dev_size = PAPER_DEV_SIZE if files["test"] else POOL_DEV_SIZE
    pool_files = files["train"] or files["heldout"]
    if not pool_files:
        raise UsageError(f"data directory '{data_dir}' holds only heldout shard 00000, no training pool ({_SETTING})")
    data_files = {"pool": [str(p) for p in pool_files]}
    for split in ("test", "test_sample"):
        if files[split]:
            data_files[split] = [str(p) for p in files[split]]
    try:
        raw = load_dataset("text", data_files=data_files, cache_dir=None if cache_dir is None else str(cache_dir))
        raw = DatasetDict(
            {name: ds.filter(_nonempty, batched=True, desc="drop empty lines") for name, ds in raw.items()}
        )
    except Exception as err:  # noqa: BLE001 - datasets wraps a bad file or cache folder in its own errors
        cause = err.__cause__ or err
        raise UsageError(
            f"cannot read the 1B Word files in '{data_dir}' (set data.cache_dir / --data-dir): "
            f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
        ) from None

    pool = raw["pool"]
    n_test = 0 if "test" in raw else test_size
    wanted = n_test + dev_size + (train_size or 1)
    if wanted > len(pool):
        raise UsageError(
            f"the 1B Word pool in '{data_dir}' has {len(pool):,} sentences, fewer than the "
            f"{'test_size + ' if n_test else ''}dev_size + train_size asked ({wanted:,} counting at least 1 "
            "for train); lower data.test_size / data.dev_size / data.train_size"
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    cuts = np.cumsum([n_test, dev_size, train_size if train_size is not None else len(pool)])
    test_idx, dev_idx, train_idx = order[: cuts[0]], order[cuts[0] : cuts[1]], order[cuts[1] : cuts[2]]

    splits: dict[str, Dataset] = {
        "train": pool.select(np.sort(train_idx)),
        "dev": pool.select(np.sort(dev_idx)),
        "test": raw["test"] if "test" in raw else pool.select(np.sort(test_idx)),
    }
    if "test_sample" in raw:
        splits["test_sample"] = raw["test_sample"]
    return DatasetDict(splits)


def _tokenize_batch(batch: dict[str, list[str]], tokenizer: Any, max_length: int) -> dict[str, list]:
    encoded = tokenizer(
        batch["text"], add_special_tokens=True, return_attention_mask=False, return_token_type_ids=False
    )["input_ids"]
    # Truncation keeps the closing special token, as the tokenizer's own truncation does.
    ids = [row if len(row) <= max_length else row[: max_length - 1] + row[-1:] for row in encoded]
    return {"input_ids": ids, "length": [len(row) for row in encoded]}


def tokenize_lm1b(
    raw: DatasetDict,
    tokenizer: Any,
    max_length: int,
    cache_dir: str | Path | None = None,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenize every split of ``raw`` into the columns ``"input_ids"`` and ``"length"`` (``"text"`` removed).

    ``input_ids`` is the tokenizer's encoding with its special tokens (for pclm's tokenizer ``<s> ... </s>``),
    truncated to ``max_length`` ids with the closing special token kept; no padding (the collator pads).
    Sentences are truncated, never dropped; ``length`` is the untruncated count, so ``length > max_length`` marks
    a truncated row. ``num_proc`` processes tokenise in parallel (``None``: one). Results are cached by
    ``datasets`` fingerprint: in ``cache_dir`` when given, else next to the source split's cache files.
    """
    if max_length < 2:
        raise UsageError(f"max_length must be >= 2 to hold the special tokens, got {max_length} (set data.max_length)")
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    # datasets' Hasher ignores a fast tokenizer's truncation state, which a tokenizer call may mutate.
    tok_hash = Hasher.hash(tokenizer)
    fn = partial(_tokenize_batch, tokenizer=tokenizer, max_length=max_length)
    out = {}
    for split, ds in raw.items():
        fingerprint = Hasher.hash([ds._fingerprint, tok_hash, max_length, "tokenize_lm1b/v2"])
        cache_file = None if cache_dir is None else str(Path(cache_dir) / f"lm1b-{split}-{fingerprint}.arrow")
        out[split] = ds.map(
            fn,
            batched=True,
            remove_columns=["text"],
            new_fingerprint=fingerprint,
            cache_file_name=cache_file,
            num_proc=num_proc if num_proc and num_proc > 1 and len(ds) >= 1000 * num_proc else None,
            desc=f"tokenize {split}",
        )
    return DatasetDict(out)


def truncated_counts(data: dict[str, Dataset], max_length: int) -> dict[str, int]:
    """Per split, how many sentences `tokenize_lm1b` cut to ``max_length`` tokens."""
    return {split: int(sum(n > max_length for n in ds["length"])) for split, ds in data.items()}
