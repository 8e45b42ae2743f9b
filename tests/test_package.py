"""The installable package: wheel contents, console command, package data; `--help` of every script.

The slow test builds the wheel, installs it into a fresh virtualenv outside the repository (its dependencies come
from this interpreter's site-packages through a .pth file, since there is no network), and trains a tiny model
there with the `pclm-train-lm` command, from a folder where the checkout is not importable."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import command_files

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = command_files()
TINY = [
    "model.hidden_size=16",
    "model.intermediate_size=32",
    "data.train_size=64",
    "data.dev_size=16",
    "data.test_size=16",
    "data.max_length=24",
    "train.batch_size=32",
    "train.eval_batch_size=32",
    "train.epochs=1",
    "train.tracker=none",
]


def env() -> dict[str, str]:
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    out.pop("PYTHONPATH", None)
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(REPO)) for s in SCRIPTS])
def test_every_script_answers_help_without_loading_torch(script):
    """`--help` works and never imports torch (the slow part of every start: seconds, not the 30 ms here)."""
    code = (
        "import runpy, sys; sys.argv = [sys.argv[1], '--help']\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(script)],
        cwd=REPO,
        env={**env(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "False", f"{script.name} --help imports torch"


def test_package_data_paths_are_the_repository_folders():
    import pclm
    from pclm.training.lm import default_tokenizer_dir

    assert (default_tokenizer_dir() / "tokenizer.json").read_bytes() == (
        REPO / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    assert (pclm.PACKAGE_DIR / "configs" / "clm_ipc.yaml").read_text() == (
        REPO / "configs" / "clm_ipc.yaml"
    ).read_text()


@pytest.mark.slow
def test_the_wheel_installs_and_trains_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        env=env(),
        timeout=600,
    )
    wheel = next(wheels.glob("pclm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "pclm/tokenizer/tokenizer.json",
        "pclm/configs/clm_bp.yaml",
        "pclm/configs/vision/README.md",
        "pclm/models/modeling_pclm.py",
        "pclm/configs/reference/clm_ipc.yaml",
        "pclm-0.1.0.dist-info/licenses/LICENSE",
    } <= set(names)
    entry_points = zipfile.ZipFile(wheel).read("pclm-0.1.0.dist-info/entry_points.txt").decode()
    assert "pclm-train-vision = pclm.cli.train_vision:run" in entry_points
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies, read from this interpreter's site-packages (a .pth path entry: its own .pth files, such as
    # an editable pclm's finder, are not run, so only the wheel's pclm can be imported)
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        env=env(),
        timeout=600,
    )
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [python, "-c", "import pclm; print(pclm.__file__)"],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(purelib), where
    run = work / "run"
    done = subprocess.run(
        [
            venv / "bin" / "pclm-train-lm",
            "--task",
            "clm",
            "--algo",
            "bp",
            "--threads",
            "1",
            "--output-dir",
            str(run),
            *TINY,
        ],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["data_sizes"]["train"] == 64
    assert (run / "best" / "model.safetensors").is_file() and (run / "best" / "README.md").is_file()
