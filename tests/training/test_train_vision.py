"""scripts/train_vision.py and pclm.training.vision: every model x algorithm trains through the shared loop, bad
input exits 2 writing nothing, the saved model reloads to the same logits, a resumed run equals an uninterrupted one.
Data: tiny synthetic MNIST-format IDX files written by the tests."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pclm.cli import train_vision as cli
from pclm.config import load_config
from pclm.data.vision import load_idx_split
from pclm.evaluation.vision import predict_logits
from pclm.training import job as runner
from pclm.vision.classifier import build_model, load_vision_run, model_spec

ROOT = Path(__file__).resolve().parents[2]

# 96 training images (16 held out as dev, 80 trained on: 3 batches of 32, the last of 16), 40 test images.
TINY = [
    "data.dev_size=16",
    "data.test_size=40",
    "train.batch_size=32",
    "train.epochs=1",
    "train.eval_batch_size=64",
    "train.lr=0.001",
    "--threads",
    "1",
]
# T = value nodes on the chain + 1, so that iPC's errors reach the first layer
SMALL_MODELS = {
    "mlp": ["model.width=16", "model.depth=3", "pc.inference_steps=3"],
    "cnn": ["model.channels=[4,8,4]", "model.hidden=16", "pc.inference_steps=5"],
    "alexnet": ["model.channels=[4,4,8,4,4]", "model.fc_width=16", "pc.inference_steps=8"],
    "width_cnn": ["model.C=1", "pc.inference_steps=5"],
}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST-format files: 96 training and 40 test images, 28x28, whose class is the bright row band."""
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("test", 40)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, y in enumerate(labels):
            images[i, 2 * y + 4 : 2 * y + 7] = 255
        images_name, labels_name = {
            "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        }[split]
        _write_idx(root / images_name, images)
        _write_idx(root / labels_name, labels)
    return root


def run(argv: list) -> int:
    return cli.main([str(a) for a in argv])


def args(data_dir: Path, out: Path, model: str = "mlp", algo: str = "ipc", *extra: str) -> list:
    return [
        "--model",
        model,
        "--dataset",
        "mnist",
        "--algo",
        algo,
        "--data-dir",
        data_dir,
        "--output-dir",
        out,
        *TINY,
        *SMALL_MODELS[model],
        *extra,
    ]


CASES = [(m, a) for m in SMALL_MODELS for a in ("bp", "pc", "ipc")] + [("mlp", "zil")]


@pytest.mark.parametrize("model,algo", CASES)
def test_every_model_and_algorithm_trains_one_epoch(model, algo, data_dir, tmp_path, one_thread):
    out = tmp_path / "run"
    assert run(args(data_dir, out, model, algo)) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "completed" and m["algo"] == algo and m["model"] == model
    assert m["epochs_run"] == 1 and m["steps"] == 3 and m["data_sizes"] == {"train": 80, "dev": 16, "test": 40}
    correct = m["test_accuracy"] * 40  # 40 test images: a fraction of them, not a mean of batch means
    assert abs(correct - round(correct)) < 1e-9 and np.isfinite(m["test_loss"])
    assert len(m["seconds_per_epoch"]) == 1 and m["history"][0]["dev_accuracy"] == m["best_dev_accuracy"]
    assert {p.name for p in (out / "best").iterdir()} >= {"model.safetensors", "model.json", "config.yaml"}
    assert load_config(out / "config.yaml").algo == algo


def test_saved_model_reloads_to_the_same_logits(data_dir, tmp_path, one_thread):
    out = tmp_path / "run"
    assert run(args(data_dir, out, "cnn", "ipc")) == 0
    model, cfg = load_vision_run(out)
    assert cfg.model["name"] == "cnn" and cfg.data.data_dir == str(data_dir)
    # the last checkpoint holds the same weights (one epoch: the best is the last)
    from safetensors.torch import load_file

    twin = build_model(*model_spec(cfg), 1)
    twin.load_state_dict(load_file(str(out / "checkpoints" / "last" / "model.safetensors")))
    images, labels = load_idx_split(data_dir, "test")
    logits = predict_logits(model, images, batch_size=7)
    assert logits.shape == (40, 10)
    assert torch.equal(logits, predict_logits(twin, images))
    # metrics.json's test accuracy is the reloaded model's (test_size=40 draws every test image)
    m = json.loads((out / "metrics.json").read_text())
    assert (logits.argmax(-1) == labels).float().mean().item() == pytest.approx(m["test_accuracy"])
    assert model.mean.flatten().item() != 0.0  # normalisation statistics were stored with the weights


class _Killed(Exception):
    pass


def _killed_after_epoch_1(monkeypatch, argv: list[str]) -> None:
    """Run `argv` until right after epoch 1's checkpoint is written, as a run killed there would stop."""
    real_fit = runner.fit

    def fit_then_die(job, accelerator, output_dir, state):
        write = job.write_metrics

        def write_then_die(st, status, final=None):
            write(st, status)
            if status == "running":
                raise _Killed

        job.write_metrics = write_then_die
        return real_fit(job, accelerator, output_dir, state)

    monkeypatch.setattr(runner, "fit", fit_then_die)
    with pytest.raises(_Killed):
        run(argv)
    monkeypatch.setattr(runner, "fit", real_fit)


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augment"])
def test_resume_equals_an_uninterrupted_run(augment, data_dir, tmp_path, one_thread, monkeypatch):
    """With data.augment, the crops and flips of epoch 2 come from the RNG state saved in epoch 1's checkpoint."""
    extra = ("train.epochs=2",) + (("data.augment=true",) if augment else ())
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(args(data_dir, straight, "mlp", "ipc", *extra)) == 0

    _killed_after_epoch_1(monkeypatch, args(data_dir, resumed, "mlp", "ipc", *extra))
    assert json.loads((resumed / "metrics.json").read_text())["epochs_run"] == 1
    assert run(args(data_dir, resumed, "mlp", "ipc", *extra, "--resume")) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, resumed))
    assert [h["dev_loss"] for h in a["history"]] == [h["dev_loss"] for h in b["history"]]
    assert (a["test_accuracy"], a["test_loss"]) == (b["test_accuracy"], b["test_loss"])


def test_training_with_augment_completes_and_differs(data_dir, tmp_path, one_thread):
    plain, augmented = tmp_path / "plain", tmp_path / "augmented"
    assert run(args(data_dir, plain, "cnn", "ipc")) == 0
    assert run(args(data_dir, augmented, "cnn", "ipc", "data.augment=true")) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (plain, augmented))
    assert b["status"] == "completed" and b["steps"] == a["steps"] == 3
    assert load_config(augmented / "config.yaml").data.augment is True
    # the same seed and batches: only the augmentation separates the two runs
    assert b["history"][0]["dev_loss"] != a["history"][0]["dev_loss"]


def test_divergence_stops_cleanly_with_exit_1(data_dir, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    assert run(args(data_dir, out, "mlp", "ipc", "pc.inference_lr=1.0e30")) == 1
    assert "diverged" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["status"] == "diverged"


BAD = {
    "missing data dir": ["--data-dir", "{tmp}/nowhere"],
    "unknown algorithm": ["--algo", "sgd"],
    "unknown model": ["--model", "resnet"],
    "unknown dataset": ["--dataset", "imagenet"],
    "unknown config key": ["train.speed=2"],
    "unknown model key": ["model.heads=2"],
    "shape key set by the data": ["model.in_features=10"],
    "bad value type": ["train.lr=fast"],
    "too few images": ["data.train_size=1000"],
    "T too short for PC": ["--algo", "pc", "pc.inference_steps=1"],
    "missing config file": ["--config", "{tmp}/none.yaml"],
    "resume without checkpoint": ["--resume"],
    "closed form on a conv net": ["--model", "cnn", "train.backend=closed_form"],
    "unknown backend": ["train.backend=jax"],
    "train.compile of earlier versions": ["train.compile=true"],
    "train.fused of earlier versions": ["train.fused=false"],
    "a language model's task": ["task=clm"],
}


def test_a_run_from_before_train_backend_resumes_and_loads(data_dir, tmp_path, one_thread, monkeypatch):
    """A run folder written before train.backend and the `task` key (its config.json / config.yaml say compile:
    false, fused: false, and name no task) resumes with today's command and its saved model loads; a saved fused:
    true reads as closed_form, which an autograd command may not resume."""
    import yaml

    out, extra = tmp_path / "run", ("train.epochs=2",)

    _killed_after_epoch_1(monkeypatch, args(data_dir, out, "mlp", "ipc", *extra))

    def as_before(value: bool) -> None:  # the train section as an earlier version wrote it
        for name in ("config.json", "config.yaml", "best/config.yaml"):
            path = out / name
            saved = json.loads(path.read_text()) if name.endswith(".json") else yaml.safe_load(path.read_text())
            saved.pop("task", None)
            saved["train"].pop("backend", None)
            saved["train"].update(compile=False, fused=value)
            path.write_text(json.dumps(saved) if name.endswith(".json") else yaml.safe_dump(saved, sort_keys=False))

    as_before(True)
    assert run([*args(data_dir, out, "mlp", "ipc", *extra), "--resume"]) == 2
    as_before(False)
    assert run([*args(data_dir, out, "mlp", "ipc", *extra, "--resume")]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    as_before(False)  # the finished run's best model, as an earlier version saved it
    model, cfg = load_vision_run(out)
    assert cfg.train.backend == "autograd" and model is not None


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    extra = [a.format(tmp=tmp_path) for a in BAD[case]]
    assert run([*args(data_dir, out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists()


def test_corrupt_checkpoint_on_resume_exits_2_and_changes_nothing(data_dir, tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert run(args(data_dir, out)) == 0
    weights = out / "checkpoints" / "last" / "model.safetensors"
    weights.write_bytes(b"\x00garbage" * 10)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert run([*args(data_dir, out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --resume") and "\n" not in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_language_model_config_is_one_line_naming_train_lm(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["--config", ROOT / "configs" / "clm_ipc.yaml", "--output-dir", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: task 'clm' is trained by train_lm (pclm-train-lm / scripts/train_lm.py)"
    assert not out.exists()


def test_no_data_dir_anywhere_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import pclm.cli.train_vision

    monkeypatch.setattr(pclm.cli.train_vision, "SHARED_DATA", tmp_path / "empty")
    assert run(["--dataset", "mnist", "--output-dir", tmp_path / "run"]) == 2
    assert "pass --data-dir" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compiled_run_equals_the_eager_run(data_dir, tmp_path, one_thread, monkeypatch):
    """train.backend=compiled gives the same training as autograd (traced with aot_eager here: the same graphs as
    inductor without code generation, see tests/training/test_compiled.py for inductor)."""
    import functools

    from pclm.training import backends

    monkeypatch.setattr(backends, "Compiled", functools.partial(backends.Compiled, torch_backend="aot_eager"))
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    assert run(args(data_dir, eager, "mlp", "ipc", "train.optimizer=sgd", "train.lr=0.05")) == 0
    assert (
        run(args(data_dir, compiled, "mlp", "ipc", "train.optimizer=sgd", "train.lr=0.05", "train.backend=compiled"))
        == 0
    )
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (eager, compiled))
    assert b["status"] == "completed" and load_config(compiled / "config.yaml").train.backend == "compiled"
    assert a["history"][0]["train_loss"] == pytest.approx(b["history"][0]["train_loss"], rel=1e-5)
    assert a["history"][0]["dev_loss"] == pytest.approx(b["history"][0]["dev_loss"], rel=1e-5)
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)


@pytest.mark.parametrize("algo", ["ipc", "pc"])
def test_fused_run_equals_the_eager_run(algo, data_dir, tmp_path, one_thread):
    """train.backend=closed_form (the MLP's mini-batch in closed form) trains the same model as autograd, with the default
    optimiser (fused AdamW, whose kernel the fused path calls directly)."""
    eager, fused = tmp_path / "eager", tmp_path / "fused"
    assert run(args(data_dir, eager, "mlp", algo, "train.lr=0.01")) == 0
    assert run(args(data_dir, fused, "mlp", algo, "train.lr=0.01", "train.backend=closed_form")) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (eager, fused))
    assert b["status"] == "completed" and load_config(fused / "config.yaml").train.backend == "closed_form"
    assert a["steps"] == b["steps"] == 3
    assert a["history"][0]["train_loss"] == pytest.approx(b["history"][0]["train_loss"], rel=1e-5)
    assert a["history"][0]["dev_loss"] == pytest.approx(b["history"][0]["dev_loss"], rel=1e-5)
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)


def test_fused_divergence_stops_cleanly_with_exit_1(data_dir, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    assert run(args(data_dir, out, "mlp", "ipc", "pc.inference_lr=1.0e30", "train.backend=closed_form")) == 1
    assert "diverged" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["status"] == "diverged"


def test_an_mlp_on_colour_images_normalises_each_channel():
    # the MLP has no in_channels: the data set's 3 channels must size the normalisation (it was 1: a crash)
    from pclm.vision.classifier import build_model, input_channels, model_spec

    cfg = load_config(None, [], task="vision", **{"model.name": "mlp", "data.dataset": "cifar10"})
    name, kwargs = model_spec(cfg)
    model = build_model(name, kwargs, input_channels(kwargs, "cifar10"))
    images = torch.rand(4, 3, 32, 32)
    model.mean.copy_(images.mean(dim=(0, 2, 3)).reshape(model.mean.shape))  # as the vision task sets it
    assert model.mean.shape == (1, 3, 1, 1) and model(images).logits.shape == (4, 10)
