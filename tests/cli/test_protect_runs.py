"""A finished run outlives the runs that would replace or share it (issue 29), tried with real runs: a diverging
`--overwrite` run gives the finished run back byte for byte, and a second writer reaching the folder through a
symlink is refused while the first one trains.

Oracles: the folder's bytes before and after, the exit codes and the one `error:` line."""

from __future__ import annotations

import time

from tests.cli.test_train_lm import snapshot
from tests.conftest import TINY, run_cli, start_cli

ARGS = ["--task", "clm", "--algo", "ipc", "--threads", "1", *TINY, "pc.inference_steps=5"]


def test_a_diverging_overwrite_gives_the_finished_run_back(tmp_path):
    done = tmp_path / "done"
    first = run_cli([*ARGS, "train.max_steps=3", "--output-dir", done])
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(done)
    bad = run_cli([*ARGS, "train.lr=1e30", "pc.inference_lr=1e30", "--overwrite", "--output-dir", done])
    assert bad.returncode == 1, bad.stderr[-2000:]
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: training diverged (NaN/inf energy); the finished run it was to replace is back in {done} (untouched)"
    ]
    assert snapshot(done) == before
    assert not list(tmp_path.glob(".*replaced*"))


def test_a_second_writer_through_a_symlink_is_refused(tmp_path):
    real, link = tmp_path / "out", tmp_path / "link"
    proc = start_cli([*ARGS, "train.epochs=200", "--output-dir", real], tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 240
        while not (real / "config.json").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-2000:]
            time.sleep(0.05)
        link.symlink_to(real, target_is_directory=True)
        for extra in (["--resume"], ["--overwrite"]):
            second = run_cli([*ARGS, "train.epochs=200", "--output-dir", link, *extra])
            assert second.returncode == 2, second.stderr[-2000:]
            assert "is in use by another process" in second.stderr
        assert proc.poll() is None  # the first writer trains on
    finally:
        proc.kill()
        proc.wait()
    assert not list(tmp_path.glob(".link*"))
