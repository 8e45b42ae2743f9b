"""experiments/lm_fidelity/report_ladder.py on a hand-made runs folder: each cell is its run's kept test perplexity in
the count asked, the ratios are those cells divided, a rung that leaves a role alone borrows the default rung's run, and
runs not there are `pending`."""

from __future__ import annotations

import json

import yaml

from experiments.lm_fidelity import report_ladder


def _run(root, method, seed, eos_in, eos_out, losses=()):
    folder = root / "seeds" / method / f"seed{seed}"
    folder.mkdir(parents=True)
    history = [{"epoch": 1, "dev_ppl_eos_out": eos_out + 10, "test_ppl_eos_out": eos_out + 5}]
    history += [{"epoch": i + 2, "train_loss": x} for i, x in enumerate(losses)]
    metrics = {"status": "completed", "test_ppl_eos_in": eos_in, "test_ppl_eos_out": eos_out, "history": history}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_cells_ratios_fallbacks_and_pending(tmp_path):
    plan = {
        "methods": {
            "clm_bp_default": {"task": "clm", "algo": "bp", "seeds": 0},
            "clm_ipc_default": {"task": "clm", "algo": "ipc", "seeds": 0},
            "clm_control_default": {"task": "clm", "algo": "ipc", "seeds": 0},
            "clm_ipc_placement": {"task": "clm", "algo": "ipc", "seeds": 0},
            "clm_control_t5": {"task": "clm", "algo": "ipc", "seeds": 0},
        }
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    runs = tmp_path / "runs"
    _run(runs, "clm_bp_default", 0, 90.0, 100.0)
    _run(runs, "clm_ipc_default", 0, 180.0, 250.0, losses=(6.5, 7.75, 7.5))
    _run(runs, "clm_control_default", 0, 110.0, 125.0)
    _run(runs, "clm_ipc_placement", 0, 150.0, 200.0)
    out = tmp_path / "out"
    argv = [str(runs), "--plan", str(tmp_path / "plan.yaml"), "--out-dir", str(out), "--name", "ladder"]
    assert report_ladder.main(argv) == 0
    md = (out / "ladder.md").read_text()
    assert "| pclm's default (N(0, 0.02), GELU, out+scores) | 100.0 | 250.0 | 125.0 | 2.50× | 2.00× |" in md
    assert "| pclm's default (N(0, 0.02), GELU, out+scores) | 90.0 | 180.0 | 110.0 | 2.00× | 1.64× |" in md
    # placement: BP borrows the default run, the control at T = 5 has not run
    assert "| value nodes scores+ffn_pre+head_pre | 100.0 ¹ | 200.0 | pending ¹ | 2.00× | – |" in md
    # a loss that rises from one epoch to the next is marked: a blow-up without a NaN
    assert "| clm_ipc_default | 0 | completed | 260.0 | 255.0 | 6.50, 7.75 (rose), 7.50 | – |" in md
    assert "| clm_bp_default | 0 | completed | 110.0 | 105.0 | – | – |" in md
    rows = json.loads((out / "ladder.json").read_text())["runs"]
    assert {(r["method"], r["status"]) for r in rows} >= {("clm_control_t5", "pending")}
    unigram = tmp_path / "unigram.json"
    unigram.write_text(json.dumps({"clm": {"test": 1228.91}, "mlm": {"test": 1435.49}}))
    assert report_ladder.main([*argv, "--unigram", str(unigram)]) == 0
    assert "(`unigram.json`): conditional test 1228.9, masked test 1435.5." in (out / "ladder.md").read_text()
    unigram.write_text(json.dumps({"clm": {}}))
    assert report_ladder.main([*argv, "--unigram", str(unigram)]) == 2


def test_probe_rows_sit_beside_the_ladder_run_at_the_preset_lr(tmp_path):
    plan = {
        "methods": {
            "clm_bp_all": {"task": "clm", "algo": "bp", "seeds": 0},
            "clm_ipc_all": {"task": "clm", "algo": "ipc", "seeds": 0},
            "clm_bp_default": {"task": "clm", "algo": "bp", "seeds": "0-1"},
            "clm_ipc_placement": {"task": "clm", "algo": "ipc", "seeds": 0},
        }
    }
    probe = {
        "methods": {
            "clm_ipc_all_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"], "seeds": 0},
            "clm_bp_all_lr0032": {"task": "clm", "algo": "bp", "overrides": ["train.lr=0.0032"], "seeds": 0},
            "clm_ipc_default_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"], "seeds": "0-1"},
            "clm_ipc_placement_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"], "seeds": 0},
            "clm_control_t5_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"], "seeds": 0},
        }
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(probe))
    runs = tmp_path / "runs"
    _run(runs, "clm_bp_all", 0, 90.0, 100.0)  # dev 110.0 at the preset's 0.0016
    _run(runs, "clm_ipc_all", 0, 900.0, 1000.0)  # dev 1010.0 at the preset's 0.0032
    _run(runs, "clm_ipc_all_lr0016", 0, 150.0, 210.0)  # dev 220.0
    _run(runs, "clm_bp_default", 0, 80.0, 90.0)  # dev 100.0; not probed, but its rung is: it stands beside iPC
    _run(runs, "clm_ipc_default_lr0016", 0, 200.0, 290.0)  # dev 300.0
    _run(runs, "clm_ipc_default_lr0016", 1, 200.0, 340.0)  # dev 350.0: a second seed gets its own row
    _run(runs, "clm_ipc_placement_lr0016", 0, 200.0, 230.0)  # dev 240.0
    _run(runs, "clm_control_t5_lr0016", 0, 100.0, 110.0)  # dev 120.0: the placement rung's control
    out = tmp_path / "out"
    argv = [str(runs), "--plan", str(tmp_path / "plan.yaml"), "--probe", str(tmp_path / "probe.yaml")]
    assert report_ladder.main([*argv, "--out-dir", str(out), "--name", "ladder"]) == 0
    md = (out / "ladder.md").read_text()
    assert "| clm all together (configs/reference) | 0.0016 | 110.0 | 220.0 | – | 2.00×, – |" in md
    assert "| clm all together (configs/reference) | 0.0032 | pending | 1010.0 | – | –, – |" in md
    default = "| clm pclm's default (N(0, 0.02), GELU, out+scores) | 0.0016 | 100.0 | 300.0 | – | 3.00×, – |"
    assert default in md and md.index(default) < md.index("| clm all together")  # rungs in the ladder's order
    seed1 = "| clm pclm's default (N(0, 0.02), GELU, out+scores) (seed 1) | 0.0016 | pending | 350.0 | – | –, – |"
    assert seed1 in md and md.index(default) < md.index(seed1)  # BP's seed 1 has not run
    # placement: the probe's control at T = 5 is its control; BP is the default rung's run at the preset lr 0.0016
    assert "| clm value nodes scores+ffn_pre+head_pre | 0.0016 | 100.0 | 240.0 | 120.0 | 2.40×, 2.00× |" in md
    assert report_ladder.main([*argv[:3], "--probe", str(tmp_path / "nope.yaml"), "--out-dir", str(out)]) == 2


def test_size_rows_meet_the_ladder_and_probe_runs_of_the_same_network(tmp_path):
    plan = {
        "fixed": ["data.train_size=50000"],
        "methods": {
            "clm_bp_default": {"task": "clm", "algo": "bp", "seeds": "0-1"},
            "clm_ipc_default": {"task": "clm", "algo": "ipc", "seeds": 0},  # the paper's lr: not the sizes' network
        },
    }
    probe = {
        "fixed": ["data.train_size=50000"],
        "methods": {
            "clm_ipc_default_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"]},
            "clm_control_default_lr0016": {"task": "clm", "algo": "ipc", "overrides": ["pc.value_nodes=none"]},
        },
    }
    sizes = {
        "methods": {
            "clm_bp_default_pool": {"task": "clm", "algo": "bp", "seeds": 0},
            "clm_ipc_default_pool": {"task": "clm", "algo": "ipc", "overrides": ["train.lr=0.0016"], "seeds": 0},
            "clm_bp_default_14202": {"task": "clm", "algo": "bp", "overrides": ["data.train_size=14202"]},
            "clm_control_default_14202": {
                "task": "clm",
                "algo": "ipc",
                "overrides": ["data.train_size=14202", "pc.value_nodes=none"],
            },
        }
    }
    for name, body in (("plan", plan), ("probe", probe), ("sizes", sizes)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body))
    runs = tmp_path / "runs"
    _run(runs, "clm_bp_default", 0, 90.0, 100.0)
    _run(runs, "clm_bp_default", 1, 91.0, 110.0)
    _run(runs, "clm_ipc_default", 0, 900.0, 1000.0)
    _run(runs, "clm_ipc_default_lr0016", 0, 150.0, 250.0)
    _run(runs, "clm_bp_default_pool", 0, 60.0, 80.0)
    _run(runs, "clm_control_default_lr0016", 0, 100.0, 125.0)
    pool = runs / "seeds/clm_bp_default_pool/seed0/metrics.json"
    pool.write_text(json.dumps({**json.loads(pool.read_text()), "data_sizes": {"train": 278404}}))
    out = tmp_path / "out"
    argv = [str(runs), "--plan", str(tmp_path / "plan.yaml"), "--probe", str(tmp_path / "probe.yaml")]
    assert report_ladder.main([*argv, "--sizes", str(tmp_path / "sizes.yaml"), "--out-dir", str(out)]) == 0
    md = (out / "lm_fidelity_ladder.md").read_text()
    default = "| clm pclm's default (N(0, 0.02), GELU, out+scores)"
    small = f"{default} | 14,202 | pending | – | pending | – | – | pending; –; pending |"
    ladder = f"{default} | 50,000 | 100.0, 110.0 | 250.0 | 125.0 | 2.50× | 2.00× | 110.0, 120.0; 260.0; 135.0 |"
    full = f"{default} | all (278,404) | 80.0 | pending | – | – | – | 90.0; pending; – |"
    assert small in md and ladder in md and full in md
    assert md.index(small) < md.index(ladder) < md.index(full)
    assert report_ladder.main([*argv, "--sizes", str(tmp_path / "nope.yaml"), "--out-dir", str(out)]) == 2
