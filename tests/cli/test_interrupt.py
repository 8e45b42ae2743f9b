"""What a user of a long run sees (issue 28): Ctrl-C (a real SIGINT to a real run) leaves status `interrupted` and
prints the exact command that resumes it, which finishes the run; time-based checkpoints; `--resume` of a run stopped
before its first checkpoint starts it again; `--resume` takes the run's saved config and names every key an
override changes.

Oracles: the exit code, metrics.json's status, the printed command run as printed, and the saved config."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, TINY, child_env, run_cli

ARGS = ["--task", "clm", "--algo", "bp", "--threads", "1", *TINY, "train.patience=0"]


def test_ctrl_c_writes_interrupted_and_prints_the_command_that_resumes(tmp_path):
    run, log = tmp_path / "run", tmp_path / "run.log"
    # batches of 8 (38 an epoch), a checkpoint every ~0.01 s of training once the pace is measured (10th batch)
    steps = ["train.batch_size=8", "train.max_steps=80", "train.checkpoint_minutes=0.0002"]
    argv = [*ARGS, "model.hidden_size=128", "model.intermediate_size=512", *steps, "--output-dir", str(run)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/train_lm.py", *argv],
            cwd=REPO,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            # started from a background job (CI under nohup/setsid), SIGINT arrives ignored and Python then installs
            # no KeyboardInterrupt: give the run the handling a terminal's Ctrl-C meets
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 240
            while not (run / "checkpoints" / "last" / "pclm_state.json").is_file():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 130, text[-2000:]
    assert f"run folder: {run.resolve()}" in text and "estimated time to the end:" in text
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 10 <= metrics["steps"] < 80
    state = json.loads((run / "checkpoints" / "last" / "pclm_state.json").read_text())
    assert state["epoch"] == 0 and state["batches_done"] >= 10  # mid-epoch 1: a time-based checkpoint
    assert "Traceback" not in text and not (tmp_path / ".run.lock").exists()
    hint = text.split("interrupted: continue with\n", 1)[1].splitlines()[0].strip()
    words = shlex.split(hint)
    assert words[:2] == ["python", "scripts/train_lm.py"] and words[-1] == "--resume" and "--overwrite" not in words
    done = subprocess.run(
        [sys.executable, *words[1:]], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stdout + done.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "max_steps" and metrics["steps"] == 80


def test_resume_of_a_run_without_a_checkpoint_starts_it_again(tmp_path):
    run = tmp_path / "run"
    first = run_cli([*ARGS, "train.max_steps=2", "--output-dir", run])
    assert first.returncode == 0, first.stderr[-2000:]
    shutil.rmtree(run / "checkpoints")  # as if stopped (Ctrl-C) before its first checkpoint
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "status": "interrupted"}))
    again = run_cli([*ARGS, "train.max_steps=2", "--output-dir", run, "--resume"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "has no checkpoint yet (stopped before the first): starting the run again" in again.stdout + again.stderr
    assert json.loads((run / "metrics.json").read_text())["status"] == "max_steps"
    assert (run / "checkpoints" / "last").is_dir()


def test_resume_takes_the_saved_config_and_names_each_differing_key(tmp_path):
    run = tmp_path / "run"
    first = run_cli([*ARGS, "train.max_steps=2", "train.lr=0.002", "--output-dir", run])
    assert first.returncode == 0, first.stderr[-2000:]
    # no overrides at all: the run's own config, not configs/clm_bp.yaml's (whose lr is 0.0016 and sizes differ)
    plain = run_cli(["--output-dir", run, "--resume", "--threads", "1"])
    assert plain.returncode == 0, plain.stderr[-2000:]
    bad = run_cli([*ARGS, "train.max_steps=2", "train.lr=0.5", "train.batch_size=8", "--output-dir", run, "--resume"])
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "train.batch_size: started with 32, now 8; train.lr: started with 0.002, now 0.5" in errors[0]


def test_config_errors_come_before_torch_is_imported():
    # the check needs no torch: the one error line must not wait for torch, transformers or datasets to load
    code = (
        "import sys; sys.path.insert(0, '.'); from pclm.cli.train_lm import main; "
        "rc = main(['--algo', 'ipc', 'train.lr=-1']); "
        "print(rc, sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr
    assert done.stderr.strip() == "error: config key 'train.lr' must be a finite number > 0, got -1.0"
