"""Run folders: one writer at a time, --overwrite that keeps the old run until the new one has a checkpoint, files
written whole, a first checkpoint that cannot strand a run, and grid values that cannot leave --output-dir.

Oracles: the old run's bytes (snapshot) after each failure, the files a killed writer would leave (built by hand),
the exact `error:` line, and the command line a launcher receives."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from pclm.errors import UsageError
from pclm.folders import RunFolder, check_writable, find_checkpoint, recover, swap_in, write_atomic
from pclm.runs import check_folder_name, launch_train
from tests.cli.test_train_lm import expect_usage_error, snapshot
from tests.conftest import BP_RUN_ARGS, TINY, run_main


@pytest.fixture
def finished(bp_run, tmp_path) -> Path:
    """A copy of the finished 2-epoch BP run."""
    run, _, code = bp_run
    assert code == 0
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


# --- --overwrite ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "pc.inference_lr=-0.5",
        "train.lr=-1",
        "train.lr=.nan",
        "model.vocab_size=10",
        "train.betas=[0.9,1.5]",
        "model.num_attention_heads=0",
    ],
)
def test_overwrite_with_bad_input_keeps_the_finished_run(capsys, finished, bad):
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--overwrite", bad], r"config key .(pc|train|model)\.", finished)


def test_overwrite_that_fails_before_the_first_checkpoint_restores_the_old_run(monkeypatch, finished):
    from pclm.training import job as runner

    before = snapshot(finished)

    def crash(job, accelerator, output_dir, state):
        assert not (output_dir / "metrics.json").exists()  # the new run's folder, the old one moved aside
        raise RuntimeError("killed by the test")

    monkeypatch.setattr(runner, "fit", crash)
    with pytest.raises(RuntimeError, match="killed by the test"):
        run_main([*BP_RUN_ARGS, "--output-dir", finished, "--overwrite", "train.epochs=1"])
    assert snapshot(finished) == before
    assert sorted(p.name for p in finished.parent.iterdir()) == ["run"]  # no aside copy, no lock file left


def test_overwrite_that_fails_after_the_first_checkpoint_keeps_both_runs(monkeypatch, finished):
    # The new run can be resumed (it has a checkpoint); the finished run it replaces waits aside until it ends well.
    from pclm.training import job as runner

    def crash(job, accelerator, output_dir, state):
        (output_dir / "checkpoints" / "last").mkdir(parents=True)  # as if a checkpoint was complete
        (output_dir / "checkpoints" / "last" / "pclm_state.json").write_text("{}")
        raise RuntimeError("killed by the test")

    monkeypatch.setattr(runner, "fit", crash)
    with pytest.raises(RuntimeError):
        run_main([*BP_RUN_ARGS, "--output-dir", finished, "--overwrite", "train.epochs=1"])
    assert json.loads((finished / "config.json").read_text())["train"]["epochs"] == 1  # the new run's
    aside = finished.parent / ".run.replaced"
    assert not (finished / "best").exists() and (aside / "best").is_dir()
    assert sorted(p.name for p in finished.parent.iterdir()) == [".run.replaced", "run"]


def test_overwrite_replaces_only_a_run_folder(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--overwrite"], r"--overwrite replaces only a run folder", out)


def test_overwrite_refuses_a_saved_model(capsys, finished):
    # A Hugging Face model folder holds a config.json too (here the run's own best model): it is not a run.
    expect_usage_error(
        capsys, [*BP_RUN_ARGS, "--overwrite"], r"--overwrite replaces only a run folder", finished / "best"
    )


def test_every_run_kind_is_a_run_folder_and_a_model_is_not(tmp_path):
    from pclm.config import RunConfig, VisionRunConfig
    from pclm.folders import check_overwritable
    from pclm.models import PCLMConfig

    for name, config in (("lm", RunConfig()), ("vision", VisionRunConfig())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config.to_dict()))
        check_overwritable(tmp_path / name)  # no error
    PCLMConfig().save_pretrained(tmp_path / "model")
    with pytest.raises(UsageError, match="--overwrite replaces only a run folder"):
        check_overwritable(tmp_path / "model")


def test_a_killed_overwrite_is_undone_on_the_next_start(tmp_path):
    # What a SIGKILL between the move aside and the first checkpoint leaves: the old run aside, a partial new one.
    out, aside = tmp_path / "run", tmp_path / ".run.replaced"
    (aside / "best").mkdir(parents=True)
    (aside / "metrics.json").write_text('{"status": "completed"}')
    (out / "checkpoints" / "last.new").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    recover(out)
    assert not aside.exists() and sorted(p.name for p in out.iterdir()) == ["best", "metrics.json"]
    # ... and once the new run has a complete checkpoint, both stay: the new one resumable, the old one aside until
    # the new one ends well (RunFolder.commit) or diverges (RunFolder.restore)
    out.rename(aside)
    (out / "checkpoints" / "last").mkdir(parents=True)
    (out / "checkpoints" / "last" / "pclm_state.json").write_text("{}")
    recover(out)
    assert (aside / "metrics.json").is_file() and (out / "checkpoints" / "last").is_dir()


# --- one writer -------------------------------------------------------------------------------------------------
def test_a_second_writer_gets_one_line(capsys, finished):
    with RunFolder(finished, owner=True):
        for flag in ("--resume", "--overwrite"):
            expect_usage_error(capsys, [*BP_RUN_ARGS, flag], r"is in use by another process", finished)
    assert not (finished.parent / ".run.lock").exists()  # released and removed on exit


def test_lock_released_after_bad_input_and_made_parents_removed(capsys, tmp_path):
    out = tmp_path / "a" / "b" / "run"
    expect_usage_error(capsys, [*BP_RUN_ARGS, "train.lr=-1"], "train.lr", out)
    expect_usage_error(capsys, [*BP_RUN_ARGS, "train.nope=1"], "unknown config key", out)
    with RunFolder(out, owner=True):
        assert (tmp_path / "a" / "b" / ".run.lock").is_file()
        with pytest.raises(UsageError, match="in use by another process"):
            RunFolder(out, owner=True).__enter__()
    assert list(tmp_path.iterdir()) == []  # the lock file and the folders made for it are gone


# --- files written whole ----------------------------------------------------------------------------------------
def test_write_atomic_leaves_the_old_file_when_interrupted(monkeypatch, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
    monkeypatch.undo()
    write_atomic(path, "new")
    assert path.read_text() == "new" and list(tmp_path.iterdir()) == [path]


def test_best_swapped_in_whole_and_recovered_after_a_kill(tmp_path):
    best, new = tmp_path / "best", tmp_path / "best.new"
    best.mkdir()
    (best / "w").write_text("epoch 1")
    new.mkdir()
    (new / "w").write_text("epoch 2")
    swap_in(new, best)
    assert (best / "w").read_text() == "epoch 2" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    # killed between the two renames: only best.old (and a half-written best.new) remain
    best.rename(tmp_path / "best.old")
    (tmp_path / "best.new").mkdir()
    recover(tmp_path)
    assert (best / "w").read_text() == "epoch 2" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]


# --- a first checkpoint that cannot strand a run ----------------------------------------------------------------
def test_stranded_first_checkpoint(capsys, tmp_path):
    # Killed while writing its first checkpoint: config.json and checkpoints/last.new only. (A folder whose
    # config.json is a run's starts again under --resume: tests/cli/test_interrupt.py; this one's is not a run's.)
    run = tmp_path / "run"
    (run / "checkpoints" / "last.new").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    assert find_checkpoint(run) is None
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], r"no checkpoint in .* and no run's config.json", run)
    # the launchers start it again instead of resuming it
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake.py"
    fake.write_text(f"import sys; open({str(calls)!r}, 'a').write(' '.join(sys.argv[2:]) + '\\n')")
    assert launch_train(f"{sys.executable} {fake}", run, ["--seed", "0"]) == 0
    (run / "checkpoints" / "last").mkdir()
    (run / "checkpoints" / "last" / "pclm_state.json").write_text("{}")
    assert launch_train(f"{sys.executable} {fake}", run, ["--seed", "0"]) == 0
    first, second = calls.read_text().splitlines()
    assert "--overwrite" in first and "--resume" not in first
    assert "--resume" in second and "--overwrite" not in second


# --- grid values ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1/../../victim", "..", "a\\b", "x\0y", "9" * 300])
def test_grid_values_that_would_leave_the_output_dir(capsys, tmp_path, value):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"task": "mlm", "algo": "bp", "grid": {"train.lr": [0.001, value]}}))
    from pclm.cli import sweep

    capsys.readouterr()
    assert sweep.main([str(grid), "--output-dir", str(tmp_path / "out"), "--launcher", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad grid file") and "not a plain folder name" in err[0]
    assert not (tmp_path / "out").exists() and (victim / "keep.txt").read_text() == "keep"


def test_check_folder_name():
    assert check_folder_name("lr=0.001_inference_steps=4") == "lr=0.001_inference_steps=4"
    for bad in ("a/b", "..", "", ".", "a..b", "a\\b"):
        with pytest.raises(UsageError, match="not a plain folder name"):
            check_folder_name(bad)


def test_fresh_run_leaves_no_lock_or_temporary_files(tmp_path):
    out = tmp_path / "run"
    assert (
        run_main(
            [
                "--task",
                "mlm",
                "--algo",
                "bp",
                "--threads",
                "1",
                *TINY,
                "train.max_steps=2",
                "train.epochs=1",
                "--output-dir",
                out,
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best",
        "checkpoints",
        "config.json",
        "config.yaml",
        "metrics.json",
    ]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last"]


def test_files_written_aside_get_the_usual_permissions(tmp_path):
    import os

    from pclm.folders import write_atomic

    old = os.umask(0o022)
    os.umask(old)
    write_atomic(tmp_path / "metrics.json", "{}")
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~old


def test_recover_removes_the_temporary_file_of_a_write_killed_midway(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"status": "running"}')
    (run / ".metrics.json.abc123.tmp").write_text('{"status": "comp')  # what a kill during write_atomic leaves
    recover(run)
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("folder is a file", "cannot create --x '{t}/f': File exists"),
        ("a file above the folder", "cannot create --x '{t}/f/sub': Not a directory"),
        ("a folder in the file's place", "cannot write '{t}/d': a folder"),
        ("a read-only folder", "cannot write in --x '{t}/ro': Permission denied"),
    ],
)
def test_check_writable_refuses_and_creates_nothing(case, message, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "ro").mkdir()
    files = {
        "folder is a file": [tmp_path / "f" / "a.json"],
        "a file above the folder": [tmp_path / "f" / "sub" / "a.json"],
        "a folder in the file's place": [tmp_path / "ok.json", tmp_path / "d"],
        "a read-only folder": [tmp_path / "ro" / "new" / "a.json"],
    }[case]
    if case == "a read-only folder":  # root ignores permission bits: the probe file's creation is refused instead
        import tempfile

        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError) as err:
        check_writable(files, "--x")
    assert str(err.value) == message.format(t=tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_check_writable_accepts_a_new_folder_and_leaves_no_probe(tmp_path):
    check_writable([tmp_path / "new" / "deeper" / "a.json", tmp_path / "b.md"], "--x")
    assert list(tmp_path.iterdir()) == []
