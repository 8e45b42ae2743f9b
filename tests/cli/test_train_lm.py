"""scripts/train_lm.py end to end: bad input, a short BP run, and resuming after a SIGKILL.

Oracles: the exit code and the output folder's bytes before the call (bad input); a uniform predictor's perplexity,
which is the vocabulary size (learning); the checkpoint's own weights (best/); an uninterrupted run of the same
config, float for float (resume)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import BP_RUN_ARGS, TINY, run_cli, run_main, start_cli

V = 8001  # vocabulary of the repository tokenizer: a uniform predictor's perplexity


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under root with its bytes and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = ("dir",) if p.is_dir() else (p.stat().st_mtime_ns, p.read_bytes())
    return out


def expect_usage_error(capsys, argv: list, pattern: str, output: Path, one_line: bool = True) -> str:
    """Run the CLI in-process; it must exit 2 with one `error:` line naming the problem and leave `output` as it
    was (absent, or byte for byte unchanged)."""
    before = snapshot(output) if output.exists() else None
    capsys.readouterr()
    code = run_main([*argv, "--output-dir", output])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), err
    if one_line:
        assert lines == errors, err
    else:  # the data were loaded first: progress bars, then the error as the last line
        assert lines[-1] == errors[0], err
    if before is None:
        assert not output.exists()
    else:
        assert snapshot(output) == before
    return errors[0]


# --- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--algo", "nope"], r"no config for task 'mlm' and algorithm 'nope'"),
        (["--config", "configs/mlm_bp.yaml", "--algo", "nope"], r"unknown algorithm 'nope'"),
        (["--task", "nope", "--algo", "bp"], r"no config for task 'nope'"),
        (["--config", "configs/mlm_bp.yaml", "--task", "nope"], r"unknown task 'nope'"),
        (
            ["--config", "configs/vision/mlp_mnist_ipc.yaml"],
            r"^error: task 'vision' is trained by train_vision \(pclm-train-vision / scripts/train_vision\.py\)$",
        ),
        (["--algo", "bp", "--data-dir", "/nonexistent/lm1b"], r"data directory '/nonexistent/lm1b' does not exist"),
        (["--algo", "bp", "train.nope=1"], r"unknown config key 'train\.nope'"),
        (["--algo", "bp", "model.nope=1"], r"unknown config key 'model\.nope'"),
        (["--algo", "bp", "train.epochs=many"], r"'train\.epochs' must be int"),
        (["--algo", "bp", "train.tracker=nope"], r"unknown train\.tracker 'nope'"),
        (["--algo", "bp", "data.max_length=500"], r"exceeds model\.max_position_embeddings=128"),
        (["--algo", "bp", "--config", "configs/absent.yaml"], r"config file .* does not exist"),
        (["--algo", "bp", "--threads", "many"], r"--threads"),
        (["--algo", "ipc", "pc.inference_steps=2"], r"reaches only 1"),
        # PCLMConfig's own rules (pclm.models.configuration_pclm.check_field), one line each
        (
            ["--algo", "bp", "model.hidden_act=relu"],
            r"^error: config key 'model\.hidden_act' must be one of gelu, tanh, got relu$",
        ),
        (
            ["--algo", "bp", "model.init=xavier"],
            r"^error: config key 'model\.init' must be one of bert, torch, got xavier$",
        ),
        (["--algo", "bp", "model.layer_norm_eps=0"], r"'model\.layer_norm_eps' must be a finite number > 0, got 0$"),
        (["--algo", "bp", "model.layer_norm=2"], r"'model\.layer_norm' must be true or false, got 2$"),
        (
            ["--algo", "bp", "model.num_attention_heads=3"],
            r"hidden_size 32 is not a multiple of num_attention_heads 3$",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, argv, pattern):
    expect_usage_error(capsys, [*TINY, *argv], pattern, tmp_path / "run")  # later overrides win: argv's


def test_empty_data_dir(capsys, tmp_path):
    (tmp_path / "data").mkdir()
    expect_usage_error(
        capsys, ["--algo", "bp", "--data-dir", tmp_path / "data", *TINY], "holds no 1B Word shards", tmp_path / "run"
    )


def test_data_sizes_the_corpus_cannot_hold(capsys, tmp_path):
    # Found only once the corpus is read, still before the output folder is made.
    expect_usage_error(
        capsys, ["--algo", "bp", *TINY, "data.dev_size=100000"], "fewer than", tmp_path / "run", one_line=False
    )


def test_existing_output_dir_needs_overwrite(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    expect_usage_error(capsys, ["--algo", "bp", *TINY], "is not empty .*--overwrite", out)


def test_exit_code_of_the_real_process(tmp_path):
    done = run_cli(["--algo", "nope", "--output-dir", tmp_path / "run"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no config for task 'mlm' and algorithm 'nope' "
        f"({Path('configs/mlm_nope.yaml').resolve()} is missing): choose "
        "--task mlm|clm and --algo bp|pc|ipc, or pass --config"
    ]
    assert not (tmp_path / "run").exists()


# --- bad checkpoints for --resume -------------------------------------------------------------------------------
def test_resume_without_a_run(capsys, tmp_path):
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "no checkpoint", tmp_path / "run")


def test_resume_from_a_folder_of_garbage(capsys, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "junk.bin").write_bytes(os.urandom(256))
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "no checkpoint", out)
    (out / "checkpoints" / "last").mkdir()
    (out / "checkpoints" / "last" / "pclm_state.json").write_text("{not json")
    (out / "config.json").write_text("[]")
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", out)


def test_resume_from_a_saved_model(capsys, tmp_path):
    from pclm import PCLMConfig, PCLMForMaskedLM

    out = tmp_path / "run"
    # The run's own sizes (conftest's TINY), so that the missing checkpoint is the only thing wrong; config.json too
    PCLMForMaskedLM(PCLMConfig(hidden_size=32, intermediate_size=64)).save_pretrained(out)
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "no checkpoint", out)


@pytest.fixture
def run_copy(bp_run, tmp_path) -> Path:
    run, _, code = bp_run
    assert code == 0
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_resume_from_another_models_checkpoint(capsys, run_copy):
    from pclm import PCLMConfig, PCLMForMaskedLM

    other = PCLMForMaskedLM(PCLMConfig(hidden_size=48, intermediate_size=64))  # width 48, not the run's 32 (TINY)
    save_file(other.state_dict(), run_copy / "checkpoints" / "last" / "model.safetensors")
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "another model's weights", run_copy)


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "pclm_state.json"])
def test_resume_from_a_corrupt_checkpoint(capsys, run_copy, name):
    (run_copy / "checkpoints" / "last" / name).write_bytes(os.urandom(300))
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", run_copy)


class _CreatesFile:
    """Unpickled without restrictions, this calls open(path, "w"): a file appears."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["optimizer.bin", "random_states_0.pkl"])
@pytest.mark.parametrize("legacy", [False, True])
def test_resume_from_a_checkpoint_that_would_run_code(capsys, run_copy, tmp_path, name, legacy):
    # Accelerate reads both files with torch.load(weights_only=True); a pickle that would create a file is refused
    # with one line and the file never appears (torch.load(weights_only=False) of the same bytes would create it).
    target = tmp_path / "pwned"
    torch.save(
        {"state": _CreatesFile(target), "param_groups": []},
        run_copy / "checkpoints" / "last" / name,
        _use_new_zipfile_serialization=not legacy,
    )
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", run_copy)
    assert not target.exists()
    torch.load(run_copy / "checkpoints" / "last" / name, weights_only=False)
    assert target.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"epoch": "two"},
        {"batches_done": -1},
        {"history": [1]},
        {"best": "low"},
        {"global_step": 1.5},
        {"bad_epochs": True},
        {"best_epoch": None, "extra": 1},
        {"format": "other/1"},
    ],
)
def test_resume_from_a_crafted_state_file(capsys, run_copy, change):
    path = run_copy / "checkpoints" / "last" / "pclm_state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", run_copy)


def test_resume_of_a_bp_checkpoint_from_before_the_no_decay_group(capsys, run_copy):
    # A BP run saved before BERT's no-decay group became BP's default: one optimiser group holding every weight.
    # Its state cannot be loaded into the two groups of today's BP optimiser: refused in one line, nothing written.
    path = run_copy / "checkpoints" / "last" / "optimizer.bin"
    state = torch.load(path, weights_only=True)
    groups = state["param_groups"]
    assert len(groups) == 2 and groups[1]["weight_decay"] == 0.0  # today's: BERT's two groups
    state["param_groups"] = [{**groups[0], "params": sorted(i for g in groups for i in g["params"])}]
    torch.save(state, path)
    n = len(state["param_groups"][0]["params"])
    expect_usage_error(
        capsys,
        [*BP_RUN_ARGS, "--resume"],
        rf"holds an optimiser state in 1 parameter group\(s\) of \[{n}\] tensors, this run's optimiser has 2 of "
        r"\[\d+, \d+\] \(since BERT's no-decay group became BP's default\); resume it with the pclm version",
        run_copy,
    )


def test_resume_from_a_crafted_safetensors_header(capsys, run_copy):
    # A header that claims more bytes than the file holds, and one that is not JSON.
    path = run_copy / "checkpoints" / "last" / "model.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", run_copy)
    path.write_bytes((1 << 40).to_bytes(8, "little") + b"{")
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "not a readable pclm checkpoint", run_copy)


def test_resume_from_an_incomplete_checkpoint(capsys, run_copy):
    (run_copy / "checkpoints" / "last" / "random_states_0.pkl").unlink()  # load_state would silently go on
    expect_usage_error(capsys, [*BP_RUN_ARGS, "--resume"], "random_states_0.pkl missing", run_copy)


def test_resume_with_another_config(capsys, run_copy):
    expect_usage_error(capsys, [*BP_RUN_ARGS, "train.lr=0.1", "--resume"], "config differs", run_copy)


# --- a short BP run ---------------------------------------------------------------------------------------------
def test_bp_lowers_dev_perplexity(bp_run):
    _, metrics, code = bp_run
    assert code == 0 and metrics["status"] == "completed"
    ppl = [h["dev_ppl"] for h in metrics["history"]]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    # An untrained model predicts nearly uniformly (perplexity ~ V = 8001); two epochs must do much better.
    assert ppl[1] < ppl[0] and ppl[1] < V / 2


def test_metrics_json(bp_run):
    _, m, _ = bp_run
    assert (m["task"], m["algo"], m["seed"], m["status"]) == ("mlm", "bp", 7, "completed")
    assert m["data_sizes"] == {"train": 300, "dev": 60, "test": 100, "test_sample": 100}
    assert m["steps"] == 2 * math.ceil(300 / 32) and m["epochs_run"] == 2
    # training time is the last epoch's running total, and part of the run's wall time
    assert m["train_seconds"] == m["history"][-1]["train_seconds"] < m["wall_seconds"]
    for h in m["history"]:
        assert set(h) >= {"epoch", "train_loss", "dev_ppl", "dev_nll", "train_seconds"}
        assert math.isclose(h["dev_ppl"], math.exp(h["dev_nll"]), rel_tol=1e-12)
    best = min(m["history"], key=lambda h: h["dev_ppl"])
    assert (m["best_epoch"], m["best_dev_ppl"]) == (best["epoch"], best["dev_ppl"])
    # The final dev score is the best model reloaded from disk, scored again: the same number.
    assert m["dev_ppl"] == best["dev_ppl"]
    for split in ("test_ppl", "test_sample_ppl"):
        assert 1 < m[split] < V


def test_best_model_loads_with_from_pretrained(bp_run, tokenizer):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    run, m, _ = bp_run
    assert m["best_model"] == str(run / "best") and m["best_epoch"] == 2
    model = AutoModelForMaskedLM.from_pretrained(run / "best")
    assert AutoTokenizer.from_pretrained(run / "best").get_vocab() == tokenizer.get_vocab()
    last = load_file(run / "checkpoints" / "last" / "model.safetensors")  # epoch 2 is both best and last
    state = model.state_dict()
    assert set(state) == set(last) and all(torch.equal(state[k], last[k]) for k in last)


def test_csv_tracker_logs_what_metrics_json_holds(bp_run):
    run, m, _ = bp_run
    rows = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,name,value"
    dev = [row.split(",") for row in rows[1:] if row.split(",")[1] == "dev/ppl"]
    logged = [(int(step), float(value)) for step, _, value in dev]
    assert logged == [(10, m["history"][0]["dev_ppl"]), (20, m["history"][1]["dev_ppl"])]


# --- resume after SIGKILL ---------------------------------------------------------------------------------------
RESUME_ARGS = [
    "--task",
    "mlm",
    "--algo",
    "bp",
    "--threads",
    "1",
    *TINY,
    "train.epochs=4",
    "train.checkpoint_every=3",
    "train.patience=0",
]
WALL_TIME = {"train_seconds", "wall_seconds", "machine", "best_model"}


def read_state(run: Path) -> dict | None:
    try:
        return json.loads((run / "checkpoints" / "last" / "pclm_state.json").read_text())
    except (OSError, ValueError):  # not there yet, or being swapped
        return None


def kill_at(proc, run: Path, wanted, timeout: float = 240) -> dict:
    """SIGKILL `proc` once its last checkpoint satisfies `wanted(state)`; returns that state. The child is stopped
    (SIGSTOP) while the checkpoint is read again, so the one resumed from is the one checked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the checkpoint wanted"
        state = read_state(run)
        if state is not None and wanted(state):
            os.kill(proc.pid, signal.SIGSTOP)
            state = read_state(run)
            if state is not None and wanted(state):
                proc.kill()  # SIGKILL
                return state
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.003)
    proc.kill()
    pytest.fail("no checkpoint as wanted before the timeout")


def comparable(metrics: dict) -> dict:
    out = {k: v for k, v in metrics.items() if k not in WALL_TIME}
    out["history"] = [{k: v for k, v in h.items() if k != "train_seconds"} for h in metrics["history"]]
    return out


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    # Fresh interpreters, not forks of this process: earlier tests may leave threads (torch.compile's, tqdm's
    # monitor) whose locks a forked child would inherit held; a child forked here once hung in epoch 2.
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = start_cli([*RESUME_ARGS, "--output-dir", ref], tmp_path / "ref.log")
    first = start_cli([*RESUME_ARGS, "--output-dir", run], tmp_path / "run1.log")
    procs = [reference, first]
    try:
        # 10 batches an epoch, a checkpoint every 3: kill in the middle of epoch 2 (skip_first_batches, set_epoch) ...
        mid = kill_at(first, run, lambda s: s["epoch"] == 1 and s["batches_done"] > 0)
        second = start_cli([*RESUME_ARGS, "--output-dir", run, "--resume"], tmp_path / "run2.log")
        procs.append(second)
        # ... then at the next epoch boundary, after the resumed part of epoch 2 ...
        end = kill_at(second, run, lambda s: s["global_step"] > mid["global_step"] and s["batches_done"] == 0)
        assert end["epoch"] == 2 and len(end["history"]) == 2
        # ... and let the second resume finish.
        third = start_cli([*RESUME_ARGS, "--output-dir", run, "--resume"], tmp_path / "run3.log")
        procs.append(third)
        assert third.wait(timeout=240) == 0, (tmp_path / "run3.log").read_text()[-3000:]
        assert reference.wait(timeout=240) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "resumed from" in (tmp_path / "run2.log").read_text()
    expected = json.loads((ref / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert expected["status"] == "completed" and len(expected["history"]) == 4 and expected["steps"] == 40
    assert comparable(got) == comparable(expected)  # every float, exactly
    a, b = load_file(ref / "best" / "model.safetensors"), load_file(run / "best" / "model.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_find_checkpoint_prefers_last_and_falls_back_to_the_swapped_out_one(tmp_path):
    from pclm.training.loop import STATE_FILE, find_checkpoint

    root = tmp_path / "checkpoints"
    assert find_checkpoint(tmp_path) is None
    for name in ("last.new", "last.old", "last"):
        (root / name).mkdir(parents=True)
    (root / "last.new" / STATE_FILE).write_text("{}")  # being written: never used
    assert find_checkpoint(tmp_path) is None
    (root / "last.old" / STATE_FILE).write_text("{}")  # killed mid-swap: last has no state file (yet)
    assert find_checkpoint(tmp_path) == root / "last.old"
    (root / "last" / STATE_FILE).write_text("{}")
    assert find_checkpoint(tmp_path) == root / "last"


def test_resume_refuses_a_checkpoint_without_every_ranks_rng_state(run_copy):
    # a 2-process resume of a checkpoint with rank 0's RNG state only: Accelerate would go on and the run would differ
    from pclm.config import load_config
    from pclm.errors import UsageError
    from pclm.training.groups import group_sizes
    from pclm.training.lm import LMTask
    from pclm.training.loop import check_resume

    cfg = load_config(run_copy / "config.yaml")
    task = LMTask(cfg)
    algorithm = task.check(run_copy)
    skeleton = task.skeleton()
    groups = group_sizes(task.param_groups(skeleton, algorithm))
    with pytest.raises(UsageError, match=r"\(random_states_1.pkl missing\)"):
        check_resume(run_copy, cfg.to_dict(), skeleton, groups, processes=2)
    assert check_resume(run_copy, cfg.to_dict(), skeleton, groups, processes=1) is not None


def test_resume_of_a_finished_run_rewrites_nothing(run_copy, capsys):
    before = snapshot(run_copy)
    assert run_main([*BP_RUN_ARGS, "--output-dir", run_copy, "--resume"]) == 0
    assert "has finished already (status completed): nothing to resume, nothing rewritten" in capsys.readouterr().out
    assert snapshot(run_copy) == before
