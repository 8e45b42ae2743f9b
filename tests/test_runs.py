"""pclm.runs' status vocabulary: the one reader given every status a job writes (as written by the code before the
vocabulary existed), an absent folder and a corrupt metrics.json; the one writer round trip and its refusals; the
launchers' verdict on a process that ended."""

import json
import math
import os

import pytest

from pclm import runs
from pclm.runs import (
    COMPLETED,
    CRASHED,
    DIVERGED,
    EARLY_STOPPED,
    FINAL_STATUSES,
    MAX_STEPS,
    MISSING,
    READER_STATUSES,
    RUNNING,
    UNREADABLE,
    USABLE_STATUSES,
    WRITTEN_STATUSES,
    read_metrics,
    run_status,
    status_after_launch,
    write_metrics,
)

# A metrics.json as pclm.training.lm wrote it before pclm.runs.write_metrics (json.dumps(..., indent=1), NaN kept).
OLD_LM_METRICS = {
    "task": "clm",
    "algo": "ipc",
    "seed": 1,
    "epochs_run": 2,
    "init_dev_ppl": 9000.5,
    "best_epoch": 2,
    "best_dev_ppl": 446.3,
    "history": [{"epoch": 1, "train_loss": 6.1, "dev_ppl": 500.0}, {"epoch": 2, "train_loss": 5.9, "dev_ppl": 446.3}],
    "train_seconds": 1234.5,
    "steps": 200,
}


def test_the_vocabulary_says_what_is_final_and_usable():
    assert WRITTEN_STATUSES == ("running", "completed", "early_stopped", "max_steps", "diverged", "interrupted")
    assert READER_STATUSES == ("missing", "unreadable", "crashed")
    assert set(USABLE_STATUSES) == {COMPLETED, EARLY_STOPPED, MAX_STEPS}
    assert set(FINAL_STATUSES) == {COMPLETED, EARLY_STOPPED, MAX_STEPS, DIVERGED}  # not RUNNING: it trains on
    assert not set(WRITTEN_STATUSES) & set(READER_STATUSES)


@pytest.mark.parametrize("status", ["running", "completed", "early_stopped", "max_steps", "diverged", "interrupted"])
def test_reader_returns_each_status_on_disk_as_written(tmp_path, status):
    written = {"status": status, **OLD_LM_METRICS, "test_ppl": math.nan}
    (tmp_path / "metrics.json").write_text(json.dumps(written, indent=1))
    got = read_metrics(tmp_path)
    assert got["status"] == status and run_status(tmp_path) == status
    assert math.isnan(got.pop("test_ppl")) and got == {"status": status, **OLD_LM_METRICS}


def test_reader_on_an_absent_folder_or_file_is_missing(tmp_path):
    assert read_metrics(tmp_path / "never_started") == {"status": MISSING}
    assert read_metrics(tmp_path) == {"status": MISSING}  # a folder in its first epoch: no metrics.json yet
    (tmp_path / "a_file").write_text("x")
    assert run_status(tmp_path / "a_file") == MISSING


@pytest.mark.parametrize(
    "content, error",
    [
        (b'{"status": "completed", "best', "JSONDecodeError"),
        (b"", "JSONDecodeError"),
        (b"\xff\xfe", "UnicodeDecodeError"),
        (b'[{"status": "completed"}]', "not a JSON object but list"),
        (b'{"best_dev_ppl": 100.0}', "unknown status None"),
        (b'{"status": "finished"}', "unknown status 'finished'"),
        (b'{"status": ["completed"]}', "unknown status ['completed']"),
    ],
)
def test_reader_on_a_corrupt_metrics_json_is_unreadable(tmp_path, content, error):
    (tmp_path / "metrics.json").write_bytes(content)
    got = read_metrics(tmp_path)
    assert set(got) == {"status", "error"} and got["status"] == UNREADABLE and got["error"].startswith(error)


def test_reader_on_a_metrics_folder_is_unreadable(tmp_path):
    (tmp_path / "metrics.json").mkdir()
    assert run_status(tmp_path) == UNREADABLE


def test_writer_round_trip_leaves_one_whole_file(tmp_path):
    fields = {**OLD_LM_METRICS, "test_ppl": 207.6}
    assert write_metrics(tmp_path, RUNNING, fields) == {"status": RUNNING, **fields}
    assert write_metrics(tmp_path, COMPLETED, fields) == {"status": COMPLETED, **fields}
    assert read_metrics(tmp_path) == {"status": COMPLETED, **fields}
    assert (tmp_path / "metrics.json").read_text().startswith('{\n "status": "completed",\n "task"')  # as before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_writer_interrupted_keeps_the_old_file_and_no_part(monkeypatch, tmp_path):
    write_metrics(tmp_path, RUNNING, OLD_LM_METRICS)
    before = (tmp_path / "metrics.json").read_text()

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_metrics(tmp_path, COMPLETED, {**OLD_LM_METRICS, "test_ppl": 1.0})
    assert (tmp_path / "metrics.json").read_text() == before and [p.name for p in tmp_path.iterdir()] == [
        "metrics.json"
    ]


@pytest.mark.parametrize("status", [MISSING, UNREADABLE, CRASHED, "finished"])
def test_writer_refuses_a_status_no_job_writes(tmp_path, status):
    with pytest.raises(ValueError, match=f"not '{status}'"):
        write_metrics(tmp_path, status, OLD_LM_METRICS)
    with pytest.raises(ValueError, match="on its own"):
        write_metrics(tmp_path, COMPLETED, {"status": COMPLETED})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "written, verdict",
    [
        (COMPLETED, COMPLETED),
        (EARLY_STOPPED, EARLY_STOPPED),
        (MAX_STEPS, MAX_STEPS),
        (DIVERGED, DIVERGED),
        (RUNNING, CRASHED),  # the process ended mid-run (an exception, a kill)
        (None, CRASHED),  # it died before its first evaluation
        ("{bad", CRASHED),
    ],
)
def test_status_after_launch(tmp_path, written, verdict):
    if written == "{bad":
        (tmp_path / "metrics.json").write_text(written)
    elif written is not None:
        runs.write_metrics(tmp_path, written, {})
    assert status_after_launch(tmp_path) == verdict


@pytest.mark.parametrize(
    "key, value",
    [("train.max_steps", None), ("train.max_steps", 3), ("train.betas", [0.9, 0.99]), ("pc.x_grads", "batch")],
)
def test_an_override_reads_back_as_its_value(key, value):
    # The oracle is the config reader itself: a sweep's or plan's grid value must reach the run unchanged.
    from pclm.config import load_config

    section, name = key.split(".")
    cfg = load_config(None, [runs.format_override(key, value)])
    got = getattr(getattr(cfg, section), name)
    assert (list(got) if isinstance(got, tuple) else got) == value
