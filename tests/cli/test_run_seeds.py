"""pclm.cli.run_seeds with a stand-in launcher: every seed recorded (diverged and crashed included), the sweep goes
on, and a re-run skips finished seeds and resumes the rest."""

import json
import sys
from pathlib import Path

import pytest

from pclm.cli import run_seeds

ROOT = Path(__file__).resolve().parents[2]

FAKE = """
import json, sys
from pathlib import Path
args = sys.argv[2:]  # argv[1] is train_lm.py
seed, out = int(args[args.index("--seed") + 1]), Path(args[args.index("--output-dir") + 1])
with open(Path(__file__).with_name("calls.txt"), "a") as f:
    f.write(f"{seed} {'--resume' in args}\\n")
out.mkdir(parents=True, exist_ok=True)
if seed == 2:  # crashes before writing anything final, leaving a complete checkpoint
    (out / "checkpoints" / "last").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / "last" / "pclm_state.json").write_text("{}")
    sys.exit(3)
status = "diverged" if seed == 1 else "completed"
(out / "metrics.json").write_text(json.dumps({"status": status, "test_ppl": 100.0 + seed}))
sys.exit(1 if status == "diverged" else 0)
"""


def test_seeds_recorded_skipped_and_resumed(tmp_path):
    fake = tmp_path / "fake_launcher.py"
    fake.write_text(FAKE)
    argv = [
        "--task",
        "clm",
        "--algo",
        "ipc",
        "--seeds",
        "0-2",
        "--output-dir",
        str(tmp_path / "runs"),
        "--launcher",
        f"{sys.executable} {fake}",
    ]
    assert run_seeds.main(argv) == 0
    summary = json.loads((tmp_path / "runs" / "seeds.json").read_text())
    assert {s: v["status"] for s, v in summary.items()} == {"0": "completed", "1": "diverged", "2": "crashed"}
    assert run_seeds.main(argv) == 0  # again: seeds 0 and 1 are final, seed 2 resumes from its checkpoint
    calls = (tmp_path / "calls.txt").read_text().split("\n")
    assert calls[:3] == ["0 False", "1 False", "2 False"] and calls[3] == "2 True" and calls[4:] == [""]


# Seed 0 ends (exit 1, as an uncaught exception does) after an epoch's "running"; seed 1 is killed after its final
# metrics.json.
ENDED = """
import json, sys
from pathlib import Path
args = sys.argv[2:]
seed, out = int(args[args.index("--seed") + 1]), Path(args[args.index("--output-dir") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"status": "running" if seed == 0 else "completed"}))
sys.exit(1 if seed == 0 else 137)
"""


def test_status_is_the_final_one_on_disk_whatever_the_exit_code(tmp_path):
    fake = tmp_path / "ended.py"
    fake.write_text(ENDED)
    argv = ["--task", "clm", "--algo", "bp", "--seeds", "0-1", "--output-dir", str(tmp_path / "runs")]
    assert run_seeds.main([*argv, "--launcher", f"{sys.executable} {fake}"]) == 0
    summary = json.loads((tmp_path / "runs" / "seeds.json").read_text())
    assert {s: (v["status"], v["exit_code"]) for s, v in summary.items()} == {
        "0": ("crashed", 1),
        "1": ("completed", 137),
    }


def test_parse_seeds_and_shards():
    assert run_seeds.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert len(run_seeds.parse_seeds("0-9999")) == 10_000
    # huge lists are refused before they are built (0-99999999999 once took the machine's memory)
    with pytest.raises(ValueError, match="seed 99999999999 is too large"):
        run_seeds.parse_seeds("0-99999999999")
    with pytest.raises(ValueError, match="more than 10,000 seeds"):
        run_seeds.parse_seeds("0-9999,20000")


# A launcher that, like `accelerate launch`, turns every failing exit code into 1.
MANGLING = """
import subprocess, sys
sys.exit(1 if subprocess.call([sys.executable, *sys.argv[1:]]) else 0)
"""


def _runner_call(capsys, argv):
    capsys.readouterr()
    code = run_seeds.main(argv)
    return code, capsys.readouterr()


@pytest.mark.slow  # the same path as the accelerate launch test below, through a launcher that works everywhere
def test_stops_at_the_first_bad_input_however_launched(tmp_path, capfd):
    launcher = tmp_path / "mangling.py"
    launcher.write_text(MANGLING)
    out = tmp_path / "runs"
    argv = [
        "--task",
        "mlm",
        "--algo",
        "bp",
        "--seeds",
        "0-2",
        "--output-dir",
        str(out),
        "--launcher",
        f"{sys.executable} {launcher}",
        "--",
        "train.lr=-1",
    ]
    assert run_seeds.main(argv) == 2
    err = capfd.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert errors == ["error: config key 'train.lr' must be a finite number > 0, got -1.0"]  # the child's, once
    assert err[-1] == "stopped at seed 0: the training script refused its input"
    assert not out.exists()  # seed 0 wrote nothing, seeds 1 and 2 never started


@pytest.mark.skipif(not Path(sys.executable).with_name("accelerate").exists(), reason="accelerate CLI not installed")
def test_stops_at_the_first_bad_input_under_accelerate_launch(tmp_path, capfd):
    out = tmp_path / "runs"
    argv = [
        "--task",
        "mlm",
        "--algo",
        "bp",
        "--seeds",
        "0-1",
        "--output-dir",
        str(out),
        "--",
        "--seed",
        "5",
        "train.nope=1",
    ]
    assert run_seeds.main(argv) == 2
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: unknown config key 'train.nope' (known: epochs, batch_size, eval_batch_size, lr, weight_decay, "
        "betas, patience, max_steps, checkpoint_every, checkpoint_minutes, log_every, tracker, backend, epoch_eval)"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    "seeds, shard, message",
    [
        ("3-1", "0/1", "range '3-1' runs backwards"),
        ("", "0/1", "'' is not a seed"),
        ("-1", "0/1", "'-1' is not a seed"),
        ("1,1", "0/1", "a seed is listed twice"),
        ("0-2", "0/0", "--shard must be i/n"),
        ("0-2", "2/2", "--shard must be i/n"),
        ("0-2", "x", "--shard must be i/n"),
        ("a", "0/1", "'a' is not a seed"),
    ],
)
def test_bad_seeds_and_shards(capsys, tmp_path, seeds, shard, message):
    code, out = _runner_call(
        capsys,
        [
            "--task",
            "clm",
            "--algo",
            "ipc",
            "--seeds",
            seeds,
            "--shard",
            shard,
            "--output-dir",
            str(tmp_path / "runs"),
            "--launcher",
            "false",
        ],
    )
    assert code == 2 and out.err.count("error:") == 1 and out.err.startswith("error: ") and message in out.err
    assert list(tmp_path.iterdir()) == []


def test_a_launcher_that_is_not_a_command_is_one_error_line(tmp_path, capsys):
    argv = ["--task", "clm", "--algo", "bp", "--seeds", "0", "--output-dir", str(tmp_path / "out")]
    capsys.readouterr()
    assert run_seeds.main([*argv, "--launcher", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --launcher '/nonexistent': '/nonexistent' is not a command this machine can run\n"
    assert not (tmp_path / "out").exists()
