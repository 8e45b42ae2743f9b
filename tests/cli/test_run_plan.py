"""pclm.cli.run_plan and pclm.cli.report_plan on a tiny plan: two runs side by side, the dev-selected point
carried into the seeds, resume skips finished runs, and the report lists every seed."""

import importlib
import json
import sys

import pytest
import yaml

from tests.conftest import REPO, TINY


def _script(name):
    return importlib.import_module(f"pclm.cli.{name}")


@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    plan = {
        "fixed": [*TINY, "train.patience=0"],
        "tune": {"epochs": 1, "seed": 0},
        "seeds": {"epochs": 1, "patience": 0},
        "methods": {
            "clm_bp": {"task": "clm", "algo": "bp", "grid": {"train.lr": [1e-6, 3e-3]}, "seeds": "0-1"},
            "clm_ipc": {"task": "clm", "algo": "ipc", "overrides": ["pc.inference_steps=4"], "seeds": 0},
        },
    }
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    out = tmp / "out"
    argv = [str(path), "--output-dir", str(out), "--workers", "2", "--launcher", sys.executable]
    code = _script("run_plan").main(argv)
    return tmp, out, argv, code


def test_plan_selects_on_dev_and_runs_every_seed(plan_run):
    _, out, _, code = plan_run
    assert code == 0
    doc = json.loads((out / "plan.json").read_text())
    runs = {r["name"]: r for r in doc["runs"]}
    assert set(runs) == {
        "tune/clm_bp/lr=1e-06",
        "tune/clm_bp/lr=0.003",
        "seeds/clm_bp/seed0",
        "seeds/clm_bp/seed1",
        "seeds/clm_ipc/seed0",
    }
    dev = {
        p: json.loads((out / f"tune/clm_bp/{p}/metrics.json").read_text())["best_dev_ppl"]
        for p in ("lr=1e-06", "lr=0.003")
    }
    assert dev["lr=0.003"] < dev["lr=1e-06"]  # lr 1e-6 barely moves from the untrained model
    assert doc["selections"]["clm_bp"]["point"] == "lr=0.003"
    for seed in (0, 1):
        cfg = yaml.safe_load((out / f"seeds/clm_bp/seed{seed}/config.yaml").read_text())
        assert cfg["train"]["lr"] == 3e-3 and cfg["seed"] == seed and cfg["train"]["epochs"] == 1
    assert all(r["status"] == "completed" and r["exit_code"] == 0 for r in doc["runs"])
    assert "seeds/clm_ipc/seed0" in runs and not any(n.startswith("tune/clm_ipc") for n in runs)  # one point


def test_rerun_skips_finished_runs(plan_run, capsys):
    _, out, argv, _ = plan_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    assert _script("run_plan").main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == before
    assert "5 of 5 runs final" in capsys.readouterr().out


def test_a_subset_run_records_every_method(plan_run):
    """A run of a subset of the methods (a stage) still records every method's runs in plan.json, so a report after
    the last stage sees the whole plan; rewriting it from a run that starts nothing keeps each final choice."""
    _, out, argv, _ = plan_run
    assert _script("run_plan").main([*argv, "--methods", "clm_ipc", "--stop-after", "0"]) == 0
    doc = json.loads((out / "plan.json").read_text())
    assert len(doc["runs"]) == 5 and all(r["status"] == "completed" for r in doc["runs"])
    assert _script("run_plan").main([*argv, "--stop-after", "0"]) == 0
    doc = json.loads((out / "plan.json").read_text())
    assert len(doc["runs"]) == 5 and doc["selections"]["clm_bp"]["point"] == "lr=0.003"
    assert all(r["status"] == "completed" for r in doc["runs"])


def test_report_lists_every_seed(plan_run):
    tmp, out, _, _ = plan_run
    unigram = tmp / "unigram.json"
    unigram.write_text(json.dumps({"clm": {"dev": 1e9, "test": 1e9}}))
    assert (
        _script("report_plan").main(
            [str(out), "--name", "tiny", "--out-dir", str(tmp / "rep"), "--unigram", str(unigram)]
        )
        == 0
    )
    doc = json.loads((tmp / "rep" / "tiny.json").read_text())
    rows = {r["method"]: r for r in doc["table3"]}
    assert rows["clm_bp"]["converged"] == rows["clm_bp"]["finished"] == rows["clm_bp"]["planned"] == 2
    tests = [r["test_ppl"] for r in doc["runs"] if r["name"].startswith("seeds/clm_bp/")]
    assert rows["clm_bp"]["mean"] == pytest.approx(sum(tests) / 2)
    assert rows["clm_bp"]["pm"] == pytest.approx(abs(tests[0] - tests[1]) / 4)  # half the population std
    md = (tmp / "rep" / "tiny.md").read_text()
    assert "| clm_bp | lr=0.003 |" in md and "**yes**" in md
    assert "## Tuning on dev (seed 0, 1 epochs per point; test never read)" in md  # the plan's, not the paper's
    assert f"Unigram model on the same targets ({unigram}):" in md
    assert "PNG beside this file (training seconds as measured (" in md  # one panel: no --step-costs
    assert "idle-machine" not in md
    from PIL import Image

    assert Image.open(tmp / "rep" / "tiny.png").size == (660, 495)  # 6 x 4.5 inches at 110 dpi: the one panel


def test_paired_comparisons_divide_the_same_seeds(plan_run, capsys):
    """--compare A/B: the ratio of the two methods' test perplexities on each seed both finished (clm_bp has seeds
    0-1, clm_ipc seed 0 only); a pair that names no method of the plan is one error line."""
    tmp, out, _, _ = plan_run
    argv = [str(out), "--name", "c", "--out-dir", str(tmp / "rep"), "--compare"]
    assert _script("report_plan").main([*argv, "clm_ipc/clm_bp"]) == 0
    doc = json.loads((tmp / "rep" / "c.json").read_text())
    tests = {(r["method"], r["seed"]): r["test_ppl"] for r in doc["runs"] if r["stage"] == "seeds"}
    ratio = tests["clm_ipc", 0] / tests["clm_bp", 0]
    assert doc["comparisons"] == [{"a": "clm_ipc", "b": "clm_bp", "ratios": {"0": ratio}, "mean": ratio}]
    assert f"| clm_ipc / clm_bp | 1 | 0: {ratio:.3f} | {ratio:.3f} |" in (tmp / "rep" / "c.md").read_text()
    capsys.readouterr()
    assert _script("report_plan").main([*argv, "clm_ipc/clm_pc"]) == 2
    assert capsys.readouterr().err == (
        "error: --compare 'clm_ipc/clm_pc': give A/B, two methods of the plan (clm_bp, clm_ipc)\n"
    )


def test_the_papers_own_table_sits_beside(plan_run, capsys):
    """--paper-table: the paper's seeds as `pclm-report runs` summarised them, in Table 3's layout; a file that is not
    such a summary is one error line."""
    tmp, out, _, _ = plan_run
    argv = [str(out), "--name", "p", "--out-dir", str(tmp / "rep"), "--paper-rule", "--paper-table"]
    assert _script("report_plan").main([*argv, str(REPO / "reports" / "paper_table3.json")]) == 0
    md = (tmp / "rep" / "p.md").read_text()
    assert "| clm | bp | 113.3 ± 0.4 | 10 / 10 |" in md and "| mlm | pc | 523.1 ± 12.3 | 3 / 10 |" in md
    assert md.index("## Table 3, the paper's rule") < md.index("## The paper's Table 3")
    (tmp / "bad.json").write_text(json.dumps({"summary": [{"task": "clm"}]}))
    capsys.readouterr()
    assert _script("report_plan").main([*argv, str(tmp / "bad.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --paper-table '{tmp / 'bad.json'}' is not a `pclm-report runs` JSON with a summary\n"
    )


def test_one_listed_point_names_its_seeds_row_and_skips_tuning():
    plan = {
        "fixed": ["data.max_length=32"],
        "methods": {
            "listed": {"task": "clm", "algo": "pc", "points": [{"pc.x_grads": "batch", "train.lr": 0.0008}]},
            "default": {"task": "clm", "algo": "pc", "overrides": ["train.lr=0.0008"]},
        },
    }
    runs, grids = _script("run_plan").build_runs(plan)
    assert grids == {"listed": [], "default": []}
    points = {r.method: r.point for r in runs}
    assert points == {"listed": "x_grads=batch+lr=0.0008", "default": ""}
    assert [r.overrides[:3] for r in runs] == [
        ["data.max_length=32", "pc.x_grads=batch", "train.lr=0.0008"],
        ["data.max_length=32", "train.lr=0.0008", "train.epochs=16"],
    ]
    rows = [
        {**vars(r), "status": "missing", "test_ppl": None, "epochs_run": None, "history": [], "data_sizes": None}
        for r in runs
    ]
    report = _script("report_plan")
    labels = {t["method"]: t["point"] for t in report.table3_rows(rows, {}, 1.0, {})}
    assert labels == {"listed": "x_grads=batch+lr=0.0008", "default": "plan default"}
    md = report.markdown(
        {
            "name": "n",
            "plan": "p.yaml",
            "passthrough": [],
            "selections": {},
            "runs": rows,
            "unigram": {},
            "threshold": 1.0,
            "table3": report.table3_rows(rows, {}, 1.0, {}),
        },
        "cmd",
    )
    assert "No method of this plan has a dev grid" in md and "## Tuning on dev" not in md
    assert "PNG" not in md  # no run has a dev history, so no plot was drawn to point to


def test_a_method_whose_grid_is_unfinished_is_not_called_plan_default():
    def run(stage, method, status):
        return {
            "stage": stage,
            "method": method,
            "task": "clm",
            "algo": "pc",
            "point": "",
            "seed": 0,
            "status": status,
            "test_ppl": None,
            "epochs_run": None,
        }

    runs = [run("tune", "grid", "completed"), run("seeds", "grid", "missing"), run("seeds", "single", "missing")]
    rows = {r["method"]: r["point"] for r in _script("report_plan").table3_rows(runs, {}, 1.0, {})}
    assert rows == {"grid": "dev grid unfinished", "single": "plan default"}


def test_bad_plans_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("methods: {}", "non-empty 'methods'"),
        ("methods: {a: {task: clm, algo: bp, grid: {train.lr: ['../x', 1]}}}", "unsafe folder name"),
    ):
        bad.write_text(text)
        assert _script("run_plan").main([str(bad), "--output-dir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_gpu_script_runs_a_tiny_plan_on_cpu(tmp_path):
    """experiments/lm_table3/gpu_table3.sh end to end with a tiny grid (on CPU here; on a lent GPU the runs share the
    device)."""
    import os
    import subprocess

    plan = {
        "fixed": [*TINY, "train.patience=0"],
        "tune": {"epochs": 1},
        "seeds": {"epochs": 1},
        "methods": {
            "clm_ipc": {
                "task": "clm",
                "algo": "ipc",
                "overrides": ["pc.inference_steps=4"],
                "grid": {"pc.x_grads": ["sample", "batch"]},
                "seeds": 0,
            }
        },
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    env = {
        **os.environ,
        "PLAN": str(tmp_path / "plan.yaml"),
        "WORKERS": "3",
        "OUT": str(tmp_path / "out"),
        "DATA": str(REPO / "pclm" / "data" / "lm1b_sample"),
        "PYTHON": sys.executable,
        "EXTRA": "pc.inference_steps=5",  # after the plan's own overrides: it wins over its 4
        "REPORT_ARGS": "--paper-rule",
    }
    res = subprocess.run(
        ["bash", str(REPO / "experiments" / "lm_table3" / "gpu_table3.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((tmp_path / "out" / "plan_gpu.json").read_text())  # named after the plan
    assert [r["status"] for r in doc["runs"]] == ["completed"] * 3 and "table3_paper" in doc
    for run in doc["runs"]:
        assert (
            yaml.safe_load((tmp_path / "out" / "runs" / run["name"] / "config.yaml").read_text())["pc"][
                "inference_steps"
            ]
            == 5
        )
    assert doc["table3"][0]["finished"] == 1 and doc["selections"]["clm_ipc"]["point"] in (
        "x_grads=sample",
        "x_grads=batch",
    )
    transfer = json.loads((tmp_path / "out" / "plan_gpu_transfer.json").read_text())
    assert [(r["method"], r["seed"]) for r in transfer["runs"]] == [("clm_ipc", 0)]
    assert transfer["sentences"] == 100 and transfer["runs"][0]["text_ppl"] > 1


@pytest.mark.parametrize(
    "plan, message",
    [
        ({"methods": {"a": {"task": "clm", "algo": "bp", "grid": [1, 2]}}}, "'grid' must map config keys"),
        ({"methods": {"a": ["clm"]}}, "method 'a' must be a mapping"),
        ({"tune": "x", "methods": {"a": {"task": "clm", "algo": "bp"}}}, "'tune' must be a mapping"),
        ({"methods": {"a": {"task": "clm", "algo": "bp", "points": [1]}}}, "'points' must be a list of mappings"),
        ({"methods": {"a": {"task": "x", "algo": "bp"}}}, "needs task: mlm|clm"),
        (  # a run's own config is read before anything starts: one line, no plan.json
            {"methods": {"a": {"task": "clm", "algo": "bp", "overrides": ["train.lr=-1"]}}},
            "run seeds/a/seed0: config key 'train.lr' must be a finite number > 0, got -1.0",
        ),
        (
            {"methods": {"a": {"task": "clm", "algo": "bp", "grid": {f"k{i}": [1, 2] for i in range(54)}}}},
            "more than 1000 points",
        ),
    ],
)
def test_bad_plans_are_one_error_line(tmp_path, capsys, plan, message):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    capsys.readouterr()
    assert _script("run_plan").main([str(path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_an_output_dir_that_is_a_file_is_one_error_line(tmp_path, capsys):
    path, out = tmp_path / "plan.yaml", tmp_path / "afile"
    path.write_text(yaml.safe_dump({"methods": {"a": {"task": "clm", "algo": "bp"}}}))
    out.write_text("x")
    capsys.readouterr()
    assert _script("run_plan").main([str(path), "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --output-dir '{out}' is a file\n"


@pytest.mark.parametrize(
    "plan_json, unigram, out, message",
    [
        ([], None, "o", "is not run_plan.py's plan.json (plan, runs)"),
        ({"plan": "p", "runs": [3]}, None, "o", "every run must be a mapping with a name"),
        ({"plan": "p", "runs": []}, [], "o", "is not pclm.cli.unigram_baseline's JSON (a mapping)"),
        ({"plan": "p", "runs": []}, None, "afile", "cannot create --out-dir '{tmp}/afile': File exists"),
    ],
)
def test_report_plan_bad_inputs_are_one_error_line(tmp_path, capsys, plan_json, unigram, out, message):
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "plan.json").write_text(json.dumps(plan_json))
    (tmp_path / "afile").write_text("x")
    argv = [str(tmp_path / "plan"), "--name", "x", "--out-dir", str(tmp_path / out)]
    if unigram is not None:
        (tmp_path / "u.json").write_text(json.dumps(unigram))
        argv += ["--unigram", str(tmp_path / "u.json")]
    capsys.readouterr()
    assert _script("report_plan").main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert not (tmp_path / "o").exists()


def test_the_papers_rule_counts_seeds_below_its_fixed_thresholds():
    """Oracle: the paper's rule (200 for BP and iPC, 800 for PC) against pclm's below-unigram rule on hand-made
    seeds, and the other count's mean over exactly the seeds the rule kept."""
    from pclm.reporting import DEFAULT_THRESHOLDS

    def seed(method, algo, k, ppl, other, status="completed", dev=None):
        return {
            "best_dev_ppl": dev,
            "stage": "seeds",
            "method": method,
            "task": "clm",
            "algo": algo,
            "seed": k,
            "point": "",
            "status": status,
            "test_ppl": ppl,
            "test_ppl_other": other,
            "epochs_run": 2,
        }

    runs = [
        seed("clm_bp", "bp", 0, 150.0, 120.0),
        seed("clm_bp", "bp", 1, 250.0, 200.0),  # below unigram, above the paper's 200
        seed("clm_pc", "pc", 0, 700.0, 600.0),
        seed("clm_pc", "pc", 1, 900.0, 800.0, status="diverged"),
        seed("clm_bp", "bp", 2, None, None, status="running", dev=180.0),  # no test yet: its dev so far is shown
    ]
    report = _script("report_plan")
    paper = {r["method"]: r for r in report.table3_rows(runs, {}, 1.0, {}, DEFAULT_THRESHOLDS)}
    ours = {r["method"]: r for r in report.table3_rows(runs, {"clm": {"test": 1000.0}}, 1.0, {})}
    assert (paper["clm_bp"]["converged"], paper["clm_bp"]["mean"], paper["clm_bp"]["other_mean"]) == (1, 150.0, 120.0)
    assert (ours["clm_bp"]["converged"], ours["clm_bp"]["mean"], ours["clm_bp"]["other_mean"]) == (2, 200.0, 160.0)
    assert (paper["clm_pc"]["converged"], paper["clm_pc"]["finished"], paper["clm_pc"]["diverged"]) == (1, 1, 1)
    lines = report.table3_lines(list(paper.values()), other=True)
    assert lines[2] == (
        "| clm_bp | clm | plan default | 150.0 ± 0.0 | 120.0 ± 0.0 | 1 / 2 / 3 | 0 | "
        "0: 150.0 (2), 1: 250.0 (2), 2: running (2; best dev so far 180.0) |"
    )


@pytest.mark.parametrize(
    "plan", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "experiments").rglob("*.yaml")), ids=str
)
def test_every_committed_plan_resolves(plan, tmp_path, capsys):
    """Every plan under experiments/ resolves, run by run, against the config tree (a mistyped key, an unknown method
    field or an out-of-range value in a committed plan is `error:` and exit 2; bad.yaml-style cases are above)."""
    assert _script("run_plan").main([str(REPO / plan), "--output-dir", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "seeds/" in capsys.readouterr().out
