#!/usr/bin/env python
"""Report of an experiment plan run by scripts/run_plan.py: the dev-tuning grid, Table 3 at equal epochs (every seed,
diverged and unfinished ones listed), the equal-updates control and dev perplexity against training time.

    python scripts/report_plan.py runs/lm_table3_full --name lm_table3_full --unigram reports/unigram_full_pool.json \\
        --step-costs reports/bench_step_idle.json --pilot runs/lm_full/pilot_mlm_bp

Writes reports/<name>.json (every run's metrics), .md and .png. A seed converges when it finished (completed or
early-stopped) and its test perplexity is below --threshold times the unigram model's on the same targets (default
1.0: better than unigram), so the paper's fixed thresholds, made for its larger training set, are not assumed here.
The ± is half the population standard deviation of the converged seeds (the paper's convention).
With --paper-rule, a second table applies the paper's own rule (converged = test perplexity below 200 for BP and
iPC, 800 for PC: pclm.reporting.DEFAULT_THRESHOLDS) and gives, over the same seeds, the mean in the other perplexity
count (`</s>` in where the runs select by `</s>` out), where the runs recorded both.
With --compare A/B (repeatable), each seed that both methods finished gives the ratio of their test perplexities:
the same seed, so the same batch order and, where the networks agree, the same initial weights (clm_ipc/clm_control
holds the weight updates equal, clm_ipc/clm_bp the epochs; masked BP keeps layer norm, masked iPC does not).
Equal wall time: each run's dev perplexity after each epoch against its training seconds as measured, and, with
--step-costs, against idle-machine seconds (batches x the benchmark's per-batch time of that method, scaled linearly
from the benchmark's batch to the run's), because runs that shared the 2 cores with other jobs were slowed by
different amounts.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from pclm.errors import ArgumentParser
from pclm.folders import check_writable
from pclm.runs import DIVERGED, MISSING, USABLE_STATUSES, read_metrics

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1f}"


def override_values(runs: list[dict], key: str) -> list[str]:
    """The values the runs' overrides give `key`, sorted, each once."""
    return sorted({o.split("=", 1)[1] for r in runs for o in r["overrides"] if o.startswith(f"{key}=")})


def mean_pm(values: list[float]) -> tuple[float, float]:
    """Mean and half the population standard deviation."""
    return statistics.fmean(values), statistics.pstdev(values) / 2 if len(values) > 1 else 0.0


def collect(out: Path) -> dict:
    plan = json.loads((out / "plan.json").read_text())
    runs = []
    for r in plan["runs"]:
        m = read_metrics(out / r["name"])
        try:
            import yaml

            batch = yaml.safe_load((out / r["name"] / "config.yaml").read_text())["train"]["batch_size"]
        except (OSError, KeyError, TypeError, ValueError):
            batch = None
        runs.append(
            {
                **r,
                "batch_size": batch,
                # no metrics.json: the plan's verdict on the run (crashed), if it launched it
                "status": (r.get("status") or MISSING) if m["status"] == MISSING else m["status"],
                "epochs_run": m.get("epochs_run"),
                "best_dev_ppl": m.get("best_dev_ppl"),
                "test_ppl": m.get("test_ppl"),
                # the other count, where the run recorded both (`</s>` in / out); the masked LM has one count
                "test_ppl_other": m.get(
                    {"</s> out": "test_ppl_eos_in", "</s> in": "test_ppl_eos_out"}.get(m.get("ppl_counts"), "")
                ),
                "test_sample_ppl": m.get("test_sample_ppl"),
                "steps": m.get("steps"),
                "train_seconds": m.get("train_seconds"),
                "data_sizes": m.get("data_sizes"),
                "history": [
                    {k: h.get(k) for k in ("epoch", "dev_ppl", "train_loss", "train_seconds")}
                    for h in m.get("history", [])
                ],
            }
        )
    return {
        "plan": plan["plan"],
        "passthrough": plan.get("passthrough"),
        "selections": plan.get("selections", {}),
        "runs": runs,
    }


def step_seconds(costs: dict | None, run: dict) -> float | None:
    """Idle seconds per batch of this run's method, from a bench_step JSON (None when it has no such row)."""
    if not costs or not run.get("batch_size"):
        return None
    cost = costs.get(f"{run['task']}:{run['algo']}:{'none' if 'pc.value_nodes=none' in run['overrides'] else 'nodes'}")
    return None if cost is None else cost * run["batch_size"] / costs["batch"]  # linear in the batch size


def bench_costs(path: Path | None) -> dict | None:
    """Per-batch idle seconds by task:algo:nodes from bench_step.py's JSON (pc and hf sections, fp32)."""
    if path is None:
        return None
    doc = json.loads(path.read_text())
    costs = {}
    for r in doc.get("pc", []):
        nodes = "none" if "pc.value_nodes=none" in r.get("overrides", []) else "nodes"
        costs[f"{r['task']}:{r['algo']}:{nodes}"] = statistics.median(r["call_s"])
    for r in doc.get("hf", []):
        if r["precision"] == "fp32":
            costs[f"{r['task']}:bp:nodes"] = statistics.median(r["pclm_s"])
            costs[f"{r['task']}:bp:none"] = costs[f"{r['task']}:bp:nodes"]
    return {**costs, "batch": doc.get("batch")}


def finished(run: dict) -> bool:
    """A run that ended with a test perplexity (completed or early-stopped)."""
    return run["status"] in USABLE_STATUSES and run["test_ppl"] is not None


def table3_rows(
    runs: list[dict], unigram: dict, threshold: float, selections: dict | None = None, limits: dict | None = None
) -> list[dict]:
    """Table 3's rows: a seed converges below `threshold` x the unigram test perplexity of its task, or, with `limits`
    ({algo: perplexity}, the paper's rule), below its algorithm's limit."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs if r["stage"] == "seeds"):
        seeds = [r for r in runs if r["stage"] == "seeds" and r["method"] == method]
        task = seeds[0]["task"]
        if limits is None:
            limit = threshold * unigram.get(task, {}).get("test", math.inf)
        else:
            limit = limits[seeds[0]["algo"]]
        done = [r for r in seeds if finished(r)]
        kept = [r for r in done if r["test_ppl"] < limit]
        conv = [r["test_ppl"] for r in kept]
        other = [r.get("test_ppl_other") for r in kept]
        mean, pm = mean_pm(conv) if conv else (None, None)
        other_mean, other_pm = mean_pm(other) if other and None not in other else (None, None)
        rows.append(
            {
                "method": method,
                "task": task,
                "algo": seeds[0]["algo"],
                "point": seeds[0]["point"]
                or (selections or {}).get(method, {}).get("point")
                or (
                    "dev grid unfinished"
                    if any(r["stage"] == "tune" and r["method"] == method for r in runs)
                    else "plan default"
                ),
                "limit": limit,
                "mean": mean,
                "pm": pm,
                "other_mean": other_mean,  # the same converged seeds in the other perplexity count
                "other_pm": other_pm,
                "converged": len(conv),
                "finished": len(done),
                "planned": len(seeds),
                "diverged": sum(r["status"] == DIVERGED for r in seeds),
                "per_seed": {
                    r["seed"]: (r["test_ppl"] if r["status"] in USABLE_STATUSES else r["status"]) for r in seeds
                },
                "epochs": {r["seed"]: r["epochs_run"] for r in seeds},
                # an unfinished seed's best dev so far (a running or interrupted run reports it every epoch)
                "dev_so_far": {r["seed"]: r.get("best_dev_ppl") for r in seeds if r["status"] not in USABLE_STATUSES},
            }
        )
    return rows


def plot(runs: list[dict], costs: dict | None, path: Path) -> bool:
    """Dev perplexity per epoch against training seconds as measured, and against idle-machine seconds beside it when
    there are step costs; False when there is no dev history to draw (or no matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    seeds = [r for r in runs if r["stage"] == "seeds" and r["history"]]
    if not seeds:
        return False
    tasks = sorted({r["task"] for r in seeds})
    panels = ["training seconds as measured", "idle-machine seconds (batches x benchmark step)"][: 2 if costs else 1]
    fig, axes = plt.subplots(len(tasks), len(panels), figsize=(6 * len(panels), 4.5 * len(tasks)), squeeze=False)
    colours = {}
    for r in seeds:
        colour = colours.setdefault(r["method"], f"C{len(colours)}")
        row = tasks.index(r["task"])
        x_meas = [h["train_seconds"] for h in r["history"]]
        y = [h["dev_ppl"] for h in r["history"]]
        label = r["method"] if r["seed"] == min(s["seed"] for s in seeds if s["method"] == r["method"]) else None
        axes[row][0].plot(x_meas, y, "-o", ms=3, color=colour, label=label)
        per_batch = step_seconds(costs, r)
        if per_batch is not None and r["steps"]:
            per_epoch = r["steps"] / max(len(r["history"]), 1)
            idle = [h["epoch"] * per_epoch * per_batch for h in r["history"]]
            axes[row][1].plot(idle, y, "-o", ms=3, color=colour, label=label)
    for row, task in enumerate(tasks):
        for col, what in enumerate(panels):
            ax = axes[row][col]
            ax.set_title(f"{task}: dev perplexity vs {what}", fontsize=9)
            ax.set_yscale("log")
            ax.set_xlabel("seconds")
            ax.set_ylabel("dev perplexity")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def table3_lines(rows: list[dict], other: bool = False) -> list[str]:
    """Table 3's Markdown rows; `other` adds the converged seeds' mean in the other perplexity count."""
    head = "| method | task | selected point | mean ± half std (converged) |"
    head += " the same seeds in the other count (`</s>` in / out) |" if other else ""
    lines = [
        head + " converged / finished / planned | diverged | per seed (epochs run) |",
        "|---" * (7 + other) + "|",
    ]
    for t in rows:
        so_far = t.get("dev_so_far", {})
        per = ", ".join(
            f"{s}: {fmt(v) if isinstance(v, float) else v} ({t['epochs'][s] or 0}"
            + (f"; best dev so far {fmt(so_far[s])})" if so_far.get(s) is not None else ")")
            for s, v in t["per_seed"].items()
        )
        cell = f"{fmt(t['mean'])} ± {fmt(t['pm'])}" if t["mean"] is not None else "–"
        if other:
            cell += " | " + (f"{fmt(t['other_mean'])} ± {fmt(t['other_pm'])}" if t.get("other_mean") else "–")
        lines.append(
            f"| {t['method']} | {t['task']} | {t['point']} | {cell} | "
            f"{t['converged']} / {t['finished']} / {t['planned']} | {t['diverged']} | {per} |"
        )
    return lines


def paired_ratios(runs: list[dict], a: str, b: str) -> dict:
    """Test perplexity of method `a` over method `b`, seed by seed, on the seeds both finished."""
    tests = {m: {} for m in (a, b)}
    for r in runs:
        if r["stage"] == "seeds" and r["method"] in tests and finished(r):
            tests[r["method"]][r["seed"]] = r["test_ppl"]
    ratios = {k: tests[a][k] / tests[b][k] for k in sorted(set(tests[a]) & set(tests[b]))}
    return {"a": a, "b": b, "ratios": ratios, "mean": statistics.fmean(ratios.values()) if ratios else None}


def paper_summary(path: Path) -> list[dict]:
    """The `summary` rows (task, algo, mean, pm, converged, seeds) of a `pclm-report runs` JSON."""
    rows = json.loads(path.read_text()).get("summary") if path.is_file() else None
    keys = ("task", "algo", "mean", "pm", "converged", "seeds")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in keys) for r in rows):
        raise ValueError(f"--paper-table '{path}' is not a `pclm-report runs` JSON with a summary")
    return [{k: r[k] for k in keys} for r in rows]


def markdown(doc: dict, command: str) -> str:
    runs, uni = doc["runs"], doc["unigram"]
    lines = [
        f"# {doc['name']}",
        "",
        f"Command: `{command}`",
        f"Plan: `{doc['plan']}` run with `scripts/run_plan.py ... -- {' '.join(doc['passthrough'] or [])}`",
        "",
    ]
    sizes = next((r["data_sizes"] for r in runs if r["data_sizes"]), None)
    if sizes:
        tokens = override_values(runs, "data.max_length")
        limit = f" (at most {'/'.join(tokens)} tokens)" if tokens else ""
        lines += [f"Data: {', '.join(f'{k} {v:,}' for k, v in sizes.items())} sentences{limit}.", ""]
    if uni:
        lines += [
            f"Unigram model on the same targets ({doc.get('unigram_path')}): "
            + "; ".join(f"{t} dev {v['dev']:.1f}, test {v['test']:.1f}" for t, v in uni.items() if isinstance(v, dict)),
            "",
        ]
    tune = [r for r in runs if r["stage"] == "tune"]
    if not tune:
        lines += ["No method of this plan has a dev grid: each trains its seeds at its one point."]
    else:
        seeds = "/".join(str(s) for s in sorted({r["seed"] for r in tune}))
        epochs = "/".join(override_values(tune, "train.epochs"))
        lines += [
            f"## Tuning on dev (seed {seeds}, {epochs} epochs per point; test never read)",
            "",
            "| method | point | status | dev ppl per epoch | best dev | selected |",
            "|---|---|---|---|---|---|",
        ]
    for r in tune:
        sel = doc["selections"].get(r["method"], {}).get("point") == r["point"]
        curve = " → ".join(fmt(h["dev_ppl"]) for h in r["history"]) or "–"
        lines.append(
            f"| {r['method']} | {r['point']} | {r['status']} | {curve} | "
            f"{fmt(r['best_dev_ppl'])} | {'**yes**' if sel else ''} |"
        )
    if doc.get("table3_paper"):
        lines += [
            "",
            "## Table 3, the paper's rule (test perplexity; converged = finished and below 200 for BP and iPC, "
            "800 for PC)",
            "",
            *table3_lines(doc["table3_paper"], other=True),
        ]
    if doc.get("comparisons"):
        lines += [
            "",
            "## Paired comparisons (test perplexity of A / B, seed by seed: the same batch order, and the same initial "
            "weights where the two networks agree)",
            "",
            "| A / B | seeds both finished | per seed | mean |",
            "|---|---|---|---|",
            *(
                f"| {c['a']} / {c['b']} | {len(c['ratios'])} | "
                + (", ".join(f"{k}: {v:.3f}" for k, v in c["ratios"].items()) or "–")
                + f" | {'–' if c['mean'] is None else format(c['mean'], '.3f')} |"
                for c in doc["comparisons"]
            ),
        ]
    if doc.get("paper_table3"):
        lines += [
            "",
            "## The paper's Table 3 (its published seeds; the same rule)",
            "",
            "| task | algorithm | mean ± half std (converged) | converged / seeds |",
            "|---|---|---|---|",
            *(
                f"| {t['task']} | {t['algo']} | {fmt(t['mean'])} ± {fmt(t['pm'])} | {t['converged']} / {t['seeds']} |"
                for t in doc["paper_table3"]
            ),
        ]
    lines += [
        "",
        f"## Table 3 at equal epochs (test perplexity; converged = finished and below {doc['threshold']} x "
        "unigram test perplexity)",
        "",
        *table3_lines(doc["table3"]),
    ]
    if doc.get("pilot"):
        p = doc["pilot"]
        lines += [
            "",
            "## Masked-LM pilot (BP, paper settings, seed 0)",
            "",
            f"Dev perplexity per epoch: {' → '.join(fmt(h['dev_ppl']) for h in p['history'])} "
            f"(status {p['status']}). 0.8 x unigram dev = {fmt(0.8 * uni['mlm']['dev'])}; first epoch below it: "
            f"{p['first_epoch_below']}.",
        ]
    if doc.get("plotted"):
        seconds = "training seconds as measured (whether a run had the machine alone: the runs' notes)"
        if doc.get("step_costs"):
            seconds = f"left, {seconds}; right, idle-machine seconds (batches x the step benchmark's per-batch time)"
        lines += [
            "",
            "Dev perplexity against training time, for comparisons at equal wall time: the PNG beside this file "
            f"({seconds}).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan_dir", type=Path, help="the --output-dir of scripts/run_plan.py")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    p.add_argument("--unigram", type=Path, help="pclm.cli.unigram_baseline's JSON for the same data")
    p.add_argument("--threshold", type=float, default=1.0, help="converged: test ppl below this x unigram's")
    p.add_argument("--step-costs", type=Path, help="benchmarks/bench_step.py's JSON (idle per-batch seconds)")
    p.add_argument("--pilot", type=Path, help="a masked-LM BP run folder to report against 0.8 x unigram")
    p.add_argument("--notes", type=Path, help="a markdown file appended to the report (provenance, what is missing)")
    p.add_argument("--paper-rule", action="store_true", help="add Table 3 under the paper's thresholds (200 / 800)")
    p.add_argument(
        "--paper-table",
        type=Path,
        help="the paper's own seeds as `pclm-report runs` summarised them "
        "(reports/paper_table3.json): set beside, in the same layout",
    )
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="A/B",
        help="per-seed test perplexity ratios of method A over method B, e.g. clm_ipc/clm_control (repeatable)",
    )
    args = p.parse_args(argv)
    try:
        if "/" in args.name or args.name.startswith(".") or not args.name:
            raise ValueError(f"--name must be a plain file stem, got '{args.name}'")
        plan = json.loads((args.plan_dir / "plan.json").read_text())
        if not isinstance(plan, dict) or not isinstance(plan.get("runs"), list) or "plan" not in plan:
            raise ValueError(f"'{args.plan_dir / 'plan.json'}' is not run_plan.py's plan.json (plan, runs)")
        if not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in plan["runs"]):
            raise ValueError(f"'{args.plan_dir / 'plan.json'}': every run must be a mapping with a name")
        doc = {"name": args.name, **collect(args.plan_dir), "threshold": args.threshold}
        doc["unigram"] = json.loads(args.unigram.read_text()) if args.unigram else {}
        if not isinstance(doc["unigram"], dict):
            raise ValueError(f"--unigram '{args.unigram}' is not pclm.cli.unigram_baseline's JSON (a mapping)")
        doc["unigram_path"] = str(args.unigram) if args.unigram else None
        if args.paper_table:
            doc["paper_table3"] = paper_summary(args.paper_table)
        methods = {r["method"] for r in doc["runs"]}
        pairs = [c.split("/") for c in args.compare]
        bad = next((c for c, ab in zip(args.compare, pairs) if len(ab) != 2 or not set(ab) <= methods), None)
        if bad is not None:
            raise ValueError(f"--compare '{bad}': give A/B, two methods of the plan ({', '.join(sorted(methods))})")
        doc["comparisons"] = [paired_ratios(doc["runs"], a, b) for a, b in pairs]
        costs = bench_costs(args.step_costs)
        if args.pilot:
            m = read_metrics(args.pilot)
            limit = 0.8 * doc["unigram"].get("mlm", {}).get("dev", math.nan)
            dev = [(h.get("epoch"), h.get("dev_ppl")) for h in m.get("history", []) if isinstance(h, dict)]
            below = next((e for e, v in dev if isinstance(v, (int, float)) and v < limit), None)
            doc["pilot"] = {
                "dir": str(args.pilot),
                "status": m["status"],
                "history": m.get("history", []),
                "first_epoch_below": below,
            }
        notes = "\n" + args.notes.read_text(encoding="utf-8") if args.notes else ""
        check_writable([args.out_dir / f"{args.name}.{ext}" for ext in ("json", "md", "png")], "--out-dir")
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    doc["table3"] = table3_rows(doc["runs"], doc["unigram"], args.threshold, doc["selections"])
    if args.paper_rule:
        from pclm.reporting import DEFAULT_THRESHOLDS

        doc["table3_paper"] = table3_rows(doc["runs"], {}, 1.0, doc["selections"], DEFAULT_THRESHOLDS)
    doc["step_costs"] = costs
    command = "python scripts/report_plan.py " + " ".join(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    doc["plotted"] = plot(doc["runs"], costs, args.out_dir / f"{args.name}.png")
    (args.out_dir / f"{args.name}.json").write_text(json.dumps({**doc, "command": command}, indent=1) + "\n")
    (args.out_dir / f"{args.name}.md").write_text(markdown(doc, command) + notes)
    print(f"wrote {args.out_dir / args.name}.{{json,md{',png' if doc['plotted'] else ''}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
