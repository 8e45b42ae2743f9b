"""One table of bad inputs to every script: each must exit 2 with exactly one `error:` line on stderr that names the
problem, and leave the test's folder (inputs, output folders, a finished run) byte for byte as it was.

Scripts run in-process (their main(argv)); the inputs are written by the test before the snapshot is taken."""

from __future__ import annotations

import contextlib
import errno
import gzip
import importlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_train_lm import snapshot
from tests.conftest import REPO, TINY, command_files

MODULES = {"calibration": "pclm.cli.report_calibration", "report": "pclm.cli.report_runs"}


def script(name: str):
    """The command `name`: its module in pclm.cli."""
    return importlib.import_module(MODULES.get(name, f"pclm.cli.{name}"))


# --- inputs -----------------------------------------------------------------------------------------------------
LM = ["--task", "mlm", "--algo", "bp", "--threads", "1", *TINY, "train.epochs=1", "train.max_steps=1"]
SHARD = "heldout-monolingual.tokenized.shuffled/news.en.heldout-00010-of-00050"


def lm1b(t: Path, name: str, content: bytes) -> Path:
    path = t / "lm1b" / f"{SHARD}{name}"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return t / "lm1b"


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def mnist(
    t: Path, images: bytes | None = None, labels: bytes | None = None, n: int = 20, size: int = 28, classes: int = 10
) -> Path:
    """MNIST-layout IDX files (random images) in t/mnist; `images` / `labels` replace the .gz files' bytes."""
    d = t / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    good_images = gzip.compress(_idx(rng.integers(0, 256, (n, size, size), dtype=np.uint8)))
    good_labels = gzip.compress(_idx((np.arange(n) % classes).astype(np.uint8)))
    for prefix in ("train", "t10k"):
        (d / f"{prefix}-images-idx3-ubyte.gz").write_bytes(good_images if images is None else images)
        (d / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(good_labels if labels is None else labels)
    return d


def vision(data: Path, *extra: str, dataset: str = "mnist") -> list[str]:
    return [
        "--dataset",
        dataset,
        "--algo",
        "bp",
        "--threads",
        "1",
        "--data-dir",
        str(data),
        "train.epochs=1",
        "data.dev_size=5",
        "train.tracker=none",
        *extra,
    ]


def parquet(t: Path, table: dict | None = None, raw: bytes | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = t / "cifar"
    d.mkdir()
    for split in ("train", "test"):
        if raw is not None:
            (d / f"{split}.parquet").write_bytes(raw)
        else:
            pq.write_table(pa.table(table), d / f"{split}.parquet")
    return d


class _CreatesFile:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_cifar(t: Path) -> Path:
    d = t / "cifar-10-batches-py"
    d.mkdir()
    batch = {b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [0], b"x": _CreatesFile(t / "pwned")}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    return d


def metrics_run(t: Path, content: str) -> Path:
    run = t / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(content)
    return t / "runs"


def grid(t: Path, text: str) -> Path:
    (t / "grid.yaml").write_text(text)
    return t / "grid.yaml"


def a_file(t: Path) -> Path:
    (t / "afile").write_text("a file, not a folder")
    return t / "afile"


def non_run_folder(t: Path) -> Path:
    (t / "mine").mkdir()
    (t / "mine" / "notes.txt").write_text("keep")
    return t / "mine"


def tokenizer(t: Path, text: str) -> Path:
    shutil.copytree(REPO / "tokenizer", t / "tok")
    (t / "tok" / "tokenizer.json").write_text(text)
    return t / "tok"


CAL = ["--dataset", "mnist"]


def empty_run(t: Path) -> Path:
    (t / "emptyrun").mkdir()
    return t / "emptyrun"


# (id, script, argv builder: tmp folder -> argv, pattern of the error line)
Case = tuple[str, str, Callable[[Path], list], str]
CASES: list[Case] = [
    # training values
    ("lr<0", "train_lm", lambda t: [*LM, "train.lr=-1"], r"'train\.lr' must be a finite number > 0, got -1\.0"),
    ("lr nan", "train_lm", lambda t: [*LM, "train.lr=.nan"], r"'train\.lr' must be a finite number > 0, got nan"),
    ("lr inf", "train_lm", lambda t: [*LM, "train.lr=.inf"], r"'train\.lr' must be a finite number > 0, got inf"),
    ("weight decay<0", "train_lm", lambda t: [*LM, "train.weight_decay=-0.01"], r"'train\.weight_decay' must be"),
    ("beta2=1", "train_lm", lambda t: [*LM, "train.betas=[0.9,1.0]"], r"'train\.betas\[1\]' must be in \[0, 1\)"),
    ("beta1 nan", "train_lm", lambda t: [*LM, "train.betas=[.nan,0.9]"], r"'train\.betas\[0\]' must be in"),
    ("gamma<0", "train_lm", lambda t: [*LM, "pc.inference_lr=-0.5"], r"'pc\.inference_lr' must be a finite number"),
    ("discount>1", "train_lm", lambda t: [*LM, "pc.discount=1.5"], r"'pc\.discount' must be in \(0, 1\]"),
    ("--seed -1", "train_lm", lambda t: [*LM, "--seed", "-1"], r"'seed' must be in \[0, 4294967295\], got -1"),
    ("seed 2^32", "train_lm", lambda t: [*LM, "seed=4294967296"], r"'seed' must be in"),
    ("split seed<0", "train_lm", lambda t: [*LM, "data.split_seed=-3"], r"'data\.split_seed' must be in"),
    ("train size 0", "train_lm", lambda t: [*LM, "data.train_size=0"], r"'data\.train_size' must be >= 1"),
    ("zero width", "train_lm", lambda t: [*LM, "model.hidden_size=0"], r"'model\.hidden_size' must be >= 1, got 0"),
    ("zero heads", "train_lm", lambda t: [*LM, "model.num_attention_heads=0"], r"'model\.num_attention_heads'"),
    ("zero layers", "train_lm", lambda t: [*LM, "model.num_hidden_layers=0"], r"'model\.num_hidden_layers'"),
    ("vocab 10", "train_lm", lambda t: [*LM, "model.vocab_size=10"], r"'model\.vocab_size' is 10, smaller than"),
    ("dropout 1", "train_lm", lambda t: [*LM, "model.hidden_dropout_prob=1.0"], r"'model\.hidden_dropout_prob'"),
    ("unknown flag", "train_lm", lambda t: [*LM, "--bogus"], r"unrecognized arguments: --bogus"),
    (
        "batch size 10**20",
        "train_lm",
        lambda t: [*LM, "train.batch_size=100000000000000000000"],
        r"'train\.batch_size' must be <= 1048576, got 100000000000000000000",
    ),
    (
        "eval batch size 1e20",
        "train_lm",
        lambda t: [*LM, "train.eval_batch_size=1e20"],
        r"'train\.eval_batch_size' must be int, got '1e20'",
    ),
    ("max steps 2**70", "train_lm", lambda t: [*LM, f"train.max_steps={2**70}"], r"'train\.max_steps' must be <="),
    (
        "heads 2**70",
        "train_lm",
        lambda t: [*LM, f"model.num_attention_heads={2**70}"],
        r"'model\.num_attention_heads' must be <=",
    ),
    (
        "vision batch size 10**20",
        "train_vision",
        lambda t: vision(mnist(t), "train.batch_size=100000000000000000000"),
        r"'train\.batch_size' must be <= 1048576",
    ),
    # files
    (
        "config not UTF-8",
        "train_lm",
        lambda t: [*LM, "--config", _write(t / "c.yaml", b"train:\n  lr: 1 \xff\xfe\n")],
        r"config file .* is not UTF-8 text",
    ),
    (
        "config binary",
        "train_lm",
        lambda t: [*LM, "--config", _write(t / "c.yaml", bytes(range(256)))],
        r"config file .* is not",
    ),
    (
        "config a list",
        "train_lm",
        lambda t: [*LM, "--config", _write(t / "c.yaml", b"- 1\n- 2\n")],
        r"must hold a mapping of sections",
    ),
    (
        "tokenizer garbage",
        "train_lm",
        lambda t: [*LM, f"data.tokenizer={tokenizer(t, '{garbage')}"],
        r"tokenizer folder .* does not load",
    ),
    (
        "tokenizer wrong json",
        "train_lm",
        lambda t: [*LM, f"data.tokenizer={tokenizer(t, '[1, 2]')}"],
        r"tokenizer folder .* does not load",
    ),
    ("shard empty", "train_lm", lambda t: [*LM, "--data-dir", lm1b(t, "", b"")], r"1B Word file .* is empty"),
    ("shard binary", "train_lm", lambda t: [*LM, "--data-dir", lm1b(t, "", os.urandom(4000))], r"1B Word file .* is"),
    ("shard NUL", "train_lm", lambda t: [*LM, "--data-dir", lm1b(t, "", b"a\0b\n" * 100)], r"binary, not text"),
    (
        "shard NUL after the first MiB",
        "train_lm",
        lambda t: [*LM, "--data-dir", lm1b(t, "", b"the cat sat on the mat .\n" * 60_000 + b"a\0b\n")],
        r"cannot read the 1B Word files .* a line holds a NUL byte: binary, not text",
    ),
    (
        "shard latin-1",
        "train_lm",
        lambda t: [*LM, "--data-dir", lm1b(t, "", "café\n".encode("latin-1") * 99)],
        r"1B Word file .* is not UTF-8 text",
    ),
    (
        "gz truncated",
        "train_lm",
        lambda t: [*LM, "--data-dir", lm1b(t, ".gz", gzip.compress(os.urandom(9000).hex().encode())[:3000])],
        r"1B Word file .*\.gz' cannot be read \(Compressed file ended",
    ),
    (
        "gz not gzip",
        "train_lm",
        lambda t: [*LM, "--data-dir", lm1b(t, ".gz", b"plain text\n" * 50)],
        r"cannot be read \(Not a gzipped file",
    ),
    ("gz empty", "train_lm", lambda t: [*LM, "--data-dir", lm1b(t, ".gz", b"")], r"1B Word file .* is empty"),
    (
        "cache under a file",
        "train_lm",
        lambda t: [*LM, f"data.cache_dir={a_file(t)}/cache"],
        r"cannot read the 1B Word files|cannot read or cache the data",
    ),
    # output folders
    (
        "output under a file",
        "train_lm",
        lambda t: [*LM, "--output-dir", a_file(t) / "run"],
        r"cannot create run folder .*afile/run'",
    ),
    ("output is a file", "train_lm", lambda t: [*LM, "--output-dir", a_file(t)], r"output directory .* is a file"),
    (
        "overwrite a non-run folder",
        "train_lm",
        lambda t: [*LM, "--overwrite", "--output-dir", non_run_folder(t)],
        r"--overwrite replaces only a run folder",
    ),
    # vision data and values
    (
        "idx truncated",
        "train_vision",
        lambda t: vision(mnist(t, images=gzip.compress(os.urandom(20 * 784))[:5000])),
        r"not a readable \.gz IDX file: .*Compressed file ended",
    ),
    (
        "idx not gzip",
        "train_vision",
        lambda t: vision(mnist(t, images=b"\0\0\x08\x03" + b"\0" * 100)),
        r"not a readable \.gz IDX file: .*Not a gzipped file",
    ),
    (
        "idx short header",
        "train_vision",
        lambda t: vision(mnist(t, images=gzip.compress(b"\0\0\x08\x03\0\0"))),
        r"truncated IDX file: .*the header names 3 sizes",
    ),
    (
        "idx short data",
        "train_vision",
        lambda t: vision(mnist(t, images=gzip.compress(_idx(np.zeros((20, 28, 28), np.uint8))[:-10]))),
        r"truncated IDX file: .*found 15670 values",
    ),
    ("lm empty output dir", "train_lm", lambda t: ["--task", "clm", "--output-dir", ""], r"--output-dir is empty"),
    ("vision act bogus", "train_vision", lambda t: vision(mnist(t), "model.act=bogus"), r"unknown activation 'bogus'"),
    (
        "lm model beyond memory",
        "train_lm",
        lambda t: ["--task", "clm", "--algo", "bp", "model.hidden_size=200000", "model.num_attention_heads=1"],
        r"model\.hidden_size=200000, .* weights need about .* GiB .* more than this machine.s",
    ),
    (
        "idx partial value",
        "train_vision",
        lambda t: vision(mnist(t, labels=gzip.compress(_idx(np.zeros(20, ">i4"), 0x0C)[:-1]))),
        r"truncated IDX file: .*not a whole number of values",
    ),
    ("idx label 10", "train_vision", lambda t: vision(mnist(t, classes=11)), r"labels .* run from 0 to 10; mnist has"),
    (
        "idx float labels",
        "train_vision",
        lambda t: vision(mnist(t, labels=gzip.compress(_idx(np.zeros(20, ">f4"), 0x0D)))),
        r"IDX labels must be integers",
    ),
    (
        "idx wrong image size",
        "train_vision",
        lambda t: vision(mnist(t, size=10)),
        r"images .* are \(1, 10, 10\) \(C, H, W\), not \(1, 28, 28\)",
    ),
    (
        "idx mislabelled count",
        "train_vision",
        lambda t: vision(mnist(t, labels=gzip.compress(_idx(np.zeros(19, np.uint8))))),
        r"IDX shapes do not match",
    ),
    (
        "parquet garbage",
        "train_vision",
        lambda t: vision(parquet(t, raw=os.urandom(2000)), dataset="cifar10"),
        r"not a CIFAR-10 parquet file: .*ArrowInvalid",
    ),
    (
        "parquet no image column",
        "train_vision",
        lambda t: vision(parquet(t, {"img": [b"x"] * 10, "label": list(range(10))}), dataset="cifar10"),
        r"not a CIFAR-10 parquet file",
    ),
    (
        "parquet bytes no image",
        "train_vision",
        lambda t: vision(
            parquet(t, {"image": [b"no image"] * 10, "label": list(range(10))}), "data.dev_size=2", dataset="cifar10"
        ),
        r"not a CIFAR-10 parquet file: .*UnidentifiedImageError",
    ),
    (
        "parquet path escapes",
        "train_vision",
        lambda t: vision(
            parquet(t, {"image": [{"bytes": None, "path": "../../etc/hostname"}] * 10, "label": list(range(10))}),
            "data.dev_size=2",
            dataset="cifar10",
        ),
        r"image path '\.\./\.\./etc/hostname' leaves the data directory",
    ),
    (
        "cifar pickle runs code",
        "train_vision",
        lambda t: vision(evil_cifar(t), dataset="cifar10-pickle"),
        r"not a CIFAR-10 pickle batch: .*refused to load 'io\.open'",
    ),
    (
        "momentum 1",
        "train_vision",
        lambda t: vision(mnist(t), "train.optimizer=sgd", "train.momentum=1"),
        r"'train\.momentum' must be in \[0, 1\)",
    ),
    ("vision zero width", "train_vision", lambda t: vision(mnist(t), "model.width=0"), r"'model\.width' must be a"),
    (
        "vision zero channel",
        "train_vision",
        lambda t: vision(mnist(t), "--model", "cnn", "model.channels=[8,0,8]"),
        r"'model\.channels' must be a positive integer",
    ),
    ("vision seed<0", "train_vision", lambda t: vision(mnist(t), "--seed", "-1"), r"'seed' must be in \[0,"),
    # report.py
    (
        "report corrupt metrics",
        "report",
        lambda t: ["--name", "x", "--out-dir", t / "rep", metrics_run(t, "{bad")],
        r"cannot read .*metrics\.json' \(JSONDecodeError",
    ),
    (
        "report metrics a list",
        "report",
        lambda t: ["--name", "x", "--out-dir", t / "rep", metrics_run(t, "[]")],
        r"cannot read .*metrics\.json'",
    ),
    (
        "report ppl below 1",
        "report",
        lambda t: ["--name", "x", "--out-dir", t / "rep", "--seeds", _write(t / "s.json", b'{"clm": {"ipc": [-5]}}')],
        r"not a perplexity \(>= 1\): -5",
    ),
    (
        "report seeds not UTF-8",
        "report",
        lambda t: ["--name", "x", "--out-dir", t / "rep", "--seeds", _write(t / "s.json", b"\xff\xfe")],
        r"cannot read per-seed JSON .*UnicodeDecodeError",
    ),
    (
        "report out-dir a file",
        "report",
        lambda t: ["--name", "x", "--out-dir", a_file(t), "--seeds", _write(t / "s.json", b'{"clm": {"ipc": [90]}}')],
        r"cannot create --out-dir .*afile': File exists",
    ),
    (
        "report out-dir under a file",
        "report",
        lambda t: [
            "--name",
            "x",
            "--out-dir",
            a_file(t) / "rep",
            "--seeds",
            _write(t / "s.json", b'{"clm": {"ipc": [90]}}'),
        ],
        r"cannot create --out-dir .*afile/rep': Not a directory",
    ),
    (
        "report name a path",
        "report",
        lambda t: ["--name", "../x", "--seeds", _write(t / "s.json", b"{}")],
        r"--name must be a plain file stem",
    ),
    (
        "report both inputs",
        "report",
        lambda t: ["--name", "x", "--seeds", _write(t / "s.json", b"{}"), t],
        r"give either run folders or --seeds JSON",
    ),
    (
        "report threshold nan",
        "report",
        lambda t: ["--name", "x", "--threshold", "ipc=nan", "--seeds", _write(t / "s.json", b"{}")],
        r"--threshold must be",
    ),
    # run_seeds.py and sweep.py
    (
        "seeds 3-1",
        "run_seeds",
        lambda t: ["--task", "clm", "--algo", "ipc", "--seeds", "3-1", "--output-dir", t / "runs"],
        r"range '3-1' runs backwards",
    ),
    (
        "shard 0/0",
        "run_seeds",
        lambda t: ["--task", "clm", "--algo", "ipc", "--shard", "0/0", "--output-dir", t / "runs"],
        r"--shard must be i/n",
    ),
    (
        "seeds output a file",
        "run_seeds",
        lambda t: ["--task", "clm", "--algo", "ipc", "--output-dir", a_file(t)],
        r"--output-dir .* is a file",
    ),
    (
        "seeds.json corrupt",
        "run_seeds",
        lambda t: ["--task", "clm", "--algo", "ipc", "--output-dir", _write(t / "runs" / "seeds.json", b"{").parent],
        r"cannot read .*seeds\.json'",
    ),
    (
        "grid empty",
        "sweep",
        lambda t: [grid(t, "task: clm\nalgo: ipc\ngrid: {}\n"), "--output-dir", t / "out"],
        r"'grid' is empty",
    ),
    (
        "grid value leaves",
        "sweep",
        lambda t: [grid(t, "task: clm\nalgo: ipc\ngrid: {train.lr: [1/../../x]}\n"), "--output-dir", t / "out"],
        r"not a plain folder name",
    ),
    (
        "grid key a flag",
        "sweep",
        lambda t: [
            grid(t, "task: clm\nalgo: ipc\nfixed: {--output-dir: /x}\ngrid: {train.lr: [1]}\n"),
            "--output-dir",
            t / "out",
        ],
        r"'--output-dir' is not a dotted config key",
    ),
    (
        "grid script a path",
        "sweep",
        lambda t: [grid(t, "task: clm\nalgo: ipc\nscript: ../x.py\ngrid: {seed: [1]}\n"), "--output-dir", t / "out"],
        r"no training script '\.\./x\.py'",
    ),
    (
        "grid output a file",
        "sweep",
        lambda t: [grid(t, "task: clm\nalgo: ipc\ngrid: {seed: [1]}\n"), "--output-dir", a_file(t)],
        r"--output-dir .* is a file",
    ),
    # pclm-report calibration
    (
        "calibration no model",
        "calibration",
        lambda t: ["--runs", f"BP={empty_run(t)}", *CAL, "--data-dir", mnist(t), "--output", t / "c"],
        r"holds no saved vision model",
    ),
    (
        "calibration corrupt model.json",
        "calibration",
        lambda t: ["--runs", f"BP={_bad_model(t)}", *CAL, "--data-dir", mnist(t), "--output", t / "c"],
        r"model\.json' is not a saved model spec",
    ),
    (
        "calibration output under a file",
        "calibration",
        lambda t: ["--runs", f"BP={empty_run(t)}", *CAL, "--data-dir", mnist(t), "--output", a_file(t) / "c"],
        r"cannot create the folder of --output .*afile': File exists",
    ),
    (
        "calibration test size 0",
        "calibration",
        lambda t: ["--runs", f"BP={empty_run(t)}", *CAL, "--data-dir", t, "--output", t / "c", "--test-size", "0"],
        r"--test-size must be positive, got 0",
    ),
    (
        "calibration method twice",
        "calibration",
        lambda t: [
            "--runs",
            f"A={empty_run(t)}",
            "--runs",
            f"A={t / 'emptyrun'}",
            *CAL,
            "--data-dir",
            t,
            "--output",
            t / "c",
        ],
        r"method 'A' given twice",
    ),
    (
        "calibration truncated test set",
        "calibration",
        lambda t: [
            "--runs",
            f"BP={empty_run(t)}",
            *CAL,
            "--data-dir",
            mnist(t, images=gzip.compress(os.urandom(20 * 784))[:5000]),
            "--output",
            t / "c",
        ],
        r"not a readable \.gz IDX file",
    ),
]


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _bad_model(t: Path) -> Path:
    _write(t / "badrun" / "best" / "model.json", b"{bad")
    _write(t / "badrun" / "best" / "model.safetensors", b"x")
    return t / "badrun"


@pytest.mark.parametrize("name, script_name, build, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, name, script_name, build, pattern):
    inputs = tmp_path / "t"
    inputs.mkdir()
    argv = [str(a) for a in build(inputs)]
    if script_name in ("train_lm", "train_vision") and "--output-dir" not in argv:
        argv += ["--output-dir", str(inputs / "run")]
    before = snapshot(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = script(script_name).main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert code == 2, err.getvalue()[-2000:]
    assert len(errors) == 1 and re.search(pattern, errors[0]), err.getvalue()[-2000:]
    assert snapshot(tmp_path) == before  # nothing written, nothing removed (no lock file, no run folder)
    assert not (inputs / "pwned").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = script("train_lm").main([*LM, "--output-dir", str(ro / "run")])
    finally:
        ro.chmod(0o755)
    assert code == 2 and err.getvalue().count("error:") == 1 and "Permission denied" in err.getvalue()
    assert list(ro.iterdir()) == []


def test_metrics_of_a_finished_run_survive_every_bad_rerun(bp_run, tmp_path):
    # The same table's training cases, aimed at a copy of a finished run with --overwrite: nothing of it changes.
    run, _, code = bp_run
    assert code == 0
    shutil.copytree(run, tmp_path / "run")
    before = snapshot(tmp_path / "run")
    for _, script_name, build, _ in CASES[:18]:
        argv = [str(a) for a in build(tmp_path)] + ["--overwrite", "--output-dir", str(tmp_path / "run")]
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                assert script(script_name).main(argv) == 2
            except SystemExit as exit_:
                assert exit_.code == 2
    assert snapshot(tmp_path / "run") == before
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("path", command_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_an_unknown_flag_is_one_error_line(path):
    # Every script's parser reports like the rest of its bad input: usage, then one `error:` line, exit 2.
    done = subprocess.run([sys.executable, str(path), "--no-such-flag"], capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert [line for line in lines if "error:" in line] == [lines[-1]] and lines[-1].startswith("error: "), done.stderr


def without_root_override() -> list[str]:
    """A command prefix under which permission bits hold: root's file-permission override dropped (setpriv), so a
    test of a read-only folder runs for root too. Nothing for another user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: a read-only folder cannot be made")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_report_into_a_read_only_out_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    seeds = _write(tmp_path / "s.json", b'{"clm": {"ipc": [90]}}')
    argv = ["--name", "x", "--out-dir", str(ro), "--seeds", str(seeds)]
    try:
        done = subprocess.run(
            [*without_root_override(), sys.executable, str(REPO / "scripts" / "report.py"), *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")},
        )
    finally:
        ro.chmod(0o755)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert lines == [f"error: cannot write in --out-dir '{ro}': Permission denied"], done.stderr[-2000:]
    assert list(ro.iterdir()) == []


# --- disk full --------------------------------------------------------------------------------------------------
DISK = ["--task", "clm", "--algo", "bp", "--threads", "1", *TINY, "train.epochs=2"]
REMOVED = r"there was no checkpoint yet, so '.*run' was removed: free some space and start it again$"
RESUMABLE = r"'.*run' keeps its last checkpoint: free some space, then continue it with --resume$"


def _fail_on(monkeypatch, owner: object, name: str, call: int, error: BaseException, after: bool) -> None:
    """`owner.name` raises `error` at its `call`-th call (after doing its work when `after`: a write that filled the
    disk at its last byte)."""
    original, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) != call:
            return original(*args, **kwargs)
        if after:
            original(*args, **kwargs)
        raise error

    monkeypatch.setattr(owner, name, failing)


def _train(argv: list) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = script("train_lm").main([str(a) for a in argv])
    return code, err.getvalue()


def _enospc(path: str = "x") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _writer(name: str):
    import accelerate

    import pclm.runs
    import pclm.training.job
    import pclm.training.lm

    return {
        "save_state": accelerate.Accelerator,
        "write_atomic": pclm.runs,
        "save_best": pclm.training.lm.LMTask,
        "save_config": pclm.training.job,
    }[name]


@pytest.mark.parametrize(
    "writer, call, error, after, ending, then",
    [
        ("save_config", 1, _enospc, False, REMOVED, "--overwrite"),  # the run folder's first file
        ("save_state", 1, _enospc, True, REMOVED, "--overwrite"),  # the first checkpoint (best/ written before it)
        ("save_best", 1, _enospc, False, REMOVED, "--overwrite"),  # the first best model
        ("write_atomic", 1, _enospc, False, RESUMABLE, "--resume"),  # metrics.json, after the first checkpoint
        ("save_state", 2, _enospc, True, RESUMABLE, "--resume"),  # the second checkpoint
        # torch.save's C++ writer says nothing of the disk: a failed save on a full filesystem is disk full
        (
            "save_state",
            1,
            lambda: RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos"),
            True,
            REMOVED,
            "--overwrite",
        ),
        # safetensors' Rust writer: the errno is in its text only
        (
            "save_state",
            2,
            lambda: RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
            False,
            RESUMABLE,
            "--resume",
        ),
    ],
    ids=["config", "first checkpoint", "best", "metrics", "second checkpoint", "torch.save", "safetensors"],
)
def test_disk_full_is_one_line_and_leaves_a_resumable_or_no_folder(
    tmp_path, monkeypatch, writer, call, error, after, ending, then
):
    import pclm.folders

    run = tmp_path / "run"
    # this disk counts as full once a write has failed
    monkeypatch.setattr(pclm.folders, "_LOW_SPACE", 2**80, raising=False)
    with monkeypatch.context() as m:
        _fail_on(m, _writer(writer), writer, call, error(), after)
        code, err = _train([*DISK, "--output-dir", run])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and "Traceback" not in err, err[-3000:]
    assert len(errors) == 1 and re.match(
        r"error: disk full while writing the run folder '.*run'; " + ending, errors[0]
    ), err[-3000:]
    if ending == REMOVED:
        assert not run.exists()
    else:
        assert (run / "checkpoints" / "last" / "pclm_state.json").is_file()
        assert not (run / "checkpoints" / "last.new").exists() and not list(run.glob(".*.tmp"))
    assert not list(tmp_path.glob(".*"))  # no lock file, nothing aside
    code, err = _train([*DISK, "--output-dir", run, then])
    assert code == 0, err[-3000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


def test_disk_full_while_replacing_a_finished_run_gives_it_back(bp_run, tmp_path, monkeypatch):
    run, _, code = bp_run
    assert code == 0
    shutil.copytree(run, tmp_path / "run")
    before = snapshot(tmp_path)
    _fail_on(monkeypatch, _writer("save_best"), "save_best", 1, _enospc(), False)
    code, err = _train([*DISK, "--overwrite", "--output-dir", tmp_path / "run"])
    assert code == 1 and "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: disk full while writing the run folder '{tmp_path / 'run'}'; the run it was to replace is back in "
        f"'{tmp_path / 'run'}', untouched"
    ]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "size, ending, then", [("1m", REMOVED, "--overwrite"), ("10m", RESUMABLE, "--resume")], ids=["1MiB", "10MiB"]
)
def test_disk_full_on_a_real_small_filesystem(tmp_path, size, ending, then):
    # The real writers (safetensors, torch.save, json) on a tmpfs too small for the run: 1 MiB fills at the first best
    # model, 10 MiB at the second epoch's checkpoint; then the filesystem grows and the run starts again or resumes.
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk]).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        run = disk / "run"
        code, err = _train([*DISK, "--output-dir", run])
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and "Traceback" not in err, err[-3000:]
        assert len(errors) == 1 and re.match(r"error: disk full while writing the run folder .*; " + ending, errors[0])
        assert run.exists() == (ending == RESUMABLE) and not list(disk.glob(".*"))
        subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        code, err = _train([*DISK, "--output-dir", run, then])
        assert code == 0, err[-3000:]
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    finally:
        subprocess.run(["umount", disk], check=True)


@pytest.mark.parametrize("command", ["run_plan", "sweep"])
def test_broken_yaml_plan_or_grid_is_one_error_line_with_its_place(tmp_path, capsys, command):
    module = importlib.import_module(f"pclm.cli.{command}")
    broken = tmp_path / "broken.yaml"
    broken.write_text("methods:\n  a: [1,2\n")
    assert module.main([str(broken), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "not valid YAML: " in err and "(line 3, column 1)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run_plan", "sweep"])
def test_a_launcher_that_is_not_a_command_is_one_error_line_for_plans_and_grids(tmp_path, capsys, command):
    module = importlib.import_module(f"pclm.cli.{command}")
    spec = tmp_path / "spec.yaml"
    spec.write_text("methods: {a: {task: clm, algo: bp}}\n" if command == "run_plan" else "grid: {train.lr: [0.1]}\n")
    assert module.main([str(spec), "--output-dir", str(tmp_path / "out"), "--launcher", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --launcher '/nonexistent': '/nonexistent' is not a command this machine can run\n"
    assert not (tmp_path / "out").exists()
