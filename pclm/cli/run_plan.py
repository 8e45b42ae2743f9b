#!/usr/bin/env python
"""Run an experiment plan: a dev-tuning stage, then seeds of each method at its dev-selected setting, several runs
side by side, resumably.

    python scripts/run_plan.py experiments/lm_table3/lm_table3_full.yaml --output-dir runs/lm_table3_full \\
        --workers 2 --threads 1 -- --data-dir ../shared/data/lm1b
    python scripts/run_plan.py PLAN --output-dir DIR --dry-run           # list the runs, start nothing

The plan (YAML) names methods; each is a task, an algorithm, fixed overrides and a grid of dotted keys:

    fixed: [data.max_length=32]                 # every run
    tune: {epochs: 2, seed: 0}                  # every grid point, compared on dev perplexity
    seeds: {epochs: 16, patience: 3}            # every seed run, at its method's selected point
    methods:
      clm_bp:  {task: clm, algo: bp, grid: {train.lr: [0.0016, 0.0032]}, seeds: 0-4}
      clm_ipc: {task: clm, algo: ipc, grid: {pc.x_grads: [sample, batch]}, seeds: 0-4}

Instead of a grid, `points: [{train.lr: 0.0032}, {pc.x_grads: batch}]` lists the points to try. A method with one
point (or none) skips tuning; one listed point names its seeds' row in the report. Runs go to
<output-dir>/tune/<method>/<point> and <output-dir>/seeds/<method>/seed<k>; each is `scripts/train_lm.py` in its
own process (pclm.runs.launch_train): skipped when its metrics.json holds a final status, resumed from a complete
checkpoint, started otherwise. A method's seeds start once all its grid points are final; the point with the
lowest best dev perplexity is chosen (diverged points lose). Seed runs are ordered seed-major (seed 0 of every
method, then seed 1, ...), so a plan cut short still covers every method. A bad-input exit (2) of any run stops the
plan with that exit code. Arguments after `--` go to every run after the plan's own overrides, so a dotted override
there wins (`-- --data-dir DIR data.train_size=null`: the plan on the whole pool).
Writes <output-dir>/plan.json: every run's folder, overrides, status (pclm.runs) and exit code, and each method's
selection.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pclm.errors import ArgumentParser, UsageError, one_line
from pclm.folders import check_writable
from pclm.runs import TRAIN_SCRIPT, format_override, format_value

SCRIPTS = TRAIN_SCRIPT.parent  # the checkout's scripts/: the training commands a run launches
CONFIGS = SCRIPTS.parent / "configs"
SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-=+")


@dataclass
class Run:
    name: str  # tune/<method>/<point> or seeds/<method>/seed<k>
    method: str
    task: str
    algo: str
    seed: int
    overrides: list[str]
    stage: str
    point: str = ""
    status: str | None = None
    exit_code: int | None = None
    needs: list[str] = field(default_factory=list)  # runs that must be final first (a method's grid)


def point_name(point: dict) -> str:
    name = "+".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in point.items()) or "default"
    if not set(name) <= SAFE or ".." in name:
        raise ValueError(f"grid value would make an unsafe folder name: '{name}'")
    return name


MAX_POINTS = 1000  # grid points of one method: more is a typo, refused before the product is built


def check_plan(plan: dict) -> None:
    """Every shape `build_runs` relies on; ValueError naming the first part that is wrong."""
    if not isinstance(plan.get("fixed", []), list):
        raise ValueError("'fixed' must be a list of overrides")
    for stage in ("tune", "seeds"):
        if not isinstance(plan.get(stage, {}), dict):
            raise ValueError(f"'{stage}' must be a mapping (epochs, seed / patience), got {plan[stage]!r}")
    for method, spec in plan["methods"].items():
        where = f"method '{method}'"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a mapping (task, algo, grid or points, seeds), got {spec!r}")
        if spec.get("task") not in ("mlm", "clm") or not isinstance(spec.get("algo"), str):
            raise ValueError(f"{where} needs task: mlm|clm and algo: bp|pc|ipc")
        if not isinstance(spec.get("overrides", []), list):
            raise ValueError(f"{where}: 'overrides' must be a list")
        grid = spec.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError(f"{where}: 'grid' must map config keys to non-empty lists of values")
        if math.prod(len(v) for v in grid.values()) > MAX_POINTS:
            raise ValueError(f"{where}: the grid has more than {MAX_POINTS} points")
        points = spec.get("points", [])
        if not isinstance(points, list) or not all(isinstance(pt, dict) for pt in points):
            raise ValueError(f"{where}: 'points' must be a list of mappings")


def build_runs(plan: dict) -> tuple[list[Run], dict[str, list[Run]]]:
    """(every run, in launch order; each method's grid runs)."""
    from pclm.runs import parse_seeds

    fixed = [str(o) for o in plan.get("fixed", [])]
    tune, seeds_stage = plan.get("tune", {}), plan.get("seeds", {})
    grids: dict[str, list[Run]] = {}
    seed_runs: dict[str, list[Run]] = {}
    for method, spec in plan["methods"].items():
        if not set(method) <= SAFE:
            raise ValueError(f"method name '{method}' is not a plain folder name")
        base = fixed + [str(o) for o in spec.get("overrides", [])]
        grid = spec.get("grid") or {}
        points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        points = [dict(pt) for pt in spec["points"]] if "points" in spec else points
        grids[method] = []
        if len(points) > 1:
            for point in points:
                over = (
                    base + [format_override(k, v) for k, v in point.items()] + [f"train.epochs={tune.get('epochs', 2)}"]
                )
                grids[method].append(
                    Run(
                        f"tune/{method}/{point_name(point)}",
                        method,
                        spec["task"],
                        spec["algo"],
                        int(tune.get("seed", 0)),
                        over,
                        "tune",
                        point_name(point),
                    )
                )
        single = points[0] if len(points) == 1 else None
        seed_over = base + ([format_override(k, v) for k, v in single.items()] if single else [])
        seed_over += [
            f"train.epochs={seeds_stage.get('epochs', 16)}",
            f"train.patience={seeds_stage.get('patience', 3)}",
        ]
        seed_runs[method] = [
            Run(
                f"seeds/{method}/seed{s}",
                method,
                spec["task"],
                spec["algo"],
                s,
                list(seed_over),
                "seeds",
                point_name(single) if single else "",  # a method's one listed point names its seeds' row
                needs=[r.name for r in grids[method]],
            )
            for s in parse_seeds(str(spec.get("seeds", 0)))
        ]
    order = [r for g in grids.values() for r in g]
    for batch in itertools.zip_longest(*seed_runs.values()):
        order += [r for r in batch if r is not None]
    return order, grids


def best_dev(run_dir: Path) -> float:
    """The run's best dev perplexity; inf when it diverged or has none."""
    from pclm.runs import DIVERGED, read_metrics

    m = read_metrics(run_dir)
    value = m.get("best_dev_ppl")
    return value if m["status"] != DIVERGED and isinstance(value, (int, float)) else math.inf


def select(grid: list[Run], out: Path) -> Run:
    """The grid point with the lowest best dev perplexity (ties: the first listed)."""
    return min(grid, key=lambda r: best_dev(out / r.name))


def main(argv: list[str] | None = None) -> int:
    from pclm.runs import (
        FINAL_STATUSES,
        default_launcher,
        launch_train,
        run_status,
        split_passthrough,
        status_after_launch,
    )

    own, passthrough = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", type=Path)
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--workers", type=int, default=1, help="runs side by side (default 1)")
    p.add_argument("--threads", default="1", help="torch threads per run (default 1)")
    p.add_argument(
        "--launcher", default=default_launcher(), help="command that starts a run (default: accelerate launch)"
    )
    p.add_argument("--methods", help="comma-separated subset of the plan's methods")
    p.add_argument("--stop-after", type=float, default=None, help="start no new run after this many seconds")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(own)
    from pclm.runs import refuse_bad_launcher

    if refuse_bad_launcher(args.launcher):
        return 2
    try:
        import yaml

        plan = yaml.safe_load(args.plan.read_text(encoding="utf-8"))
        if not isinstance(plan, dict) or not isinstance(plan.get("methods"), dict) or not plan["methods"]:
            raise ValueError("the plan must be a mapping with a non-empty 'methods' mapping")
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        check_plan(plan)
        everything, all_grids = build_runs(plan)  # plan.json records every run of the plan, started here or not
        if args.methods:
            wanted = args.methods.split(",")
            unknown = [m for m in wanted if m not in plan["methods"]]
            if unknown:
                raise ValueError(f"--methods: unknown method '{unknown[0]}'")
            plan["methods"] = {m: plan["methods"][m] for m in wanted}
        runs, grids = build_runs(plan)  # the runs started here
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as err:
        print(f"error: plan '{args.plan}': {one_line(err)}", file=sys.stderr)
        return 2
    from pclm.config import load_config

    for r in runs:  # every run's config, read as train_lm.py will: a bad one stops the plan before anything starts
        try:
            load_config(CONFIGS / f"{r.task}_{r.algo}.yaml", r.overrides, task=r.task, algo=r.algo, seed=r.seed)
        except UsageError as err:
            print(f"error: plan '{args.plan}', run {r.name}: {err}", file=sys.stderr)
            return 2
    out = args.output_dir
    if out.exists() and not out.is_dir():
        print(f"error: --output-dir '{out}' is a file", file=sys.stderr)
        return 2
    try:
        check_writable([out / "plan.json"], "--output-dir")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        for r in runs:
            print(r.name, r.task, r.algo, f"seed={r.seed}", shlex.join(r.overrides))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    selections: dict[str, dict] = {}

    def select_point(method: str) -> Run:
        chosen = select(all_grids[method], out)
        selections[method] = {
            "point": chosen.point,
            "best_dev_ppl": best_dev(out / chosen.name),
            "grid": {g.point: best_dev(out / g.name) for g in all_grids[method]},
        }
        return chosen

    def record() -> None:
        with lock:
            for method, grid in all_grids.items():  # every final grid's choice, whether or not its seeds start here
                if grid and method not in selections and all(run_status(out / g.name) in FINAL_STATUSES for g in grid):
                    select_point(method)
            ours = {r.name: r for r in runs}
            for r in everything:
                if r.name not in ours:  # another method's run (--methods): its status as on disk
                    r.status = run_status(out / r.name)
            doc = {
                "plan": str(args.plan),
                "passthrough": passthrough,
                "selections": selections,
                "runs": [asdict(ours.get(r.name, r)) for r in everything],
            }
            tmp = out / "plan.json.tmp"
            tmp.write_text(json.dumps(doc, indent=1))
            tmp.replace(out / "plan.json")

    def ready(r: Run) -> bool:
        return all(run_status(out / n) in FINAL_STATUSES for n in r.needs)

    def prepare(r: Run) -> None:
        """A seed run takes its method's selected grid point, once the grid is final."""
        if r.stage == "seeds" and grids[r.method]:
            chosen = select_point(r.method)
            point = [o for o in chosen.overrides if not o.startswith("train.epochs=") and o not in r.overrides]
            r.overrides = r.overrides + point
            r.point = chosen.point

    def execute(r: Run) -> int:
        folder = out / r.name
        folder.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            "--task",
            r.task,
            "--algo",
            r.algo,
            "--seed",
            str(r.seed),
            "--threads",
            str(args.threads),
            *r.overrides,
            *passthrough,  # after the plan's overrides: a dotted override given after `--` wins
        ]
        code = launch_train(args.launcher, folder, cmd, SCRIPTS / "train_lm.py")
        r.exit_code, r.status = code, status_after_launch(folder)
        return code

    started = time.monotonic()
    pending = [r for r in runs]
    for r in pending:
        r.status = run_status(out / r.name)
    running: dict = {}
    bad_input = 0
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        while pending or running:
            late = args.stop_after is not None and time.monotonic() - started > args.stop_after
            while not bad_input and not late and len(running) < args.workers:
                nxt = next((r for r in pending if ready(r)), None)
                if nxt is None:
                    break
                pending.remove(nxt)
                prepare(nxt)
                if nxt.status in FINAL_STATUSES:
                    continue
                running[pool.submit(execute, nxt)] = nxt
            record()
            if not running:
                break  # nothing runs and nothing can start: cut short, or every remaining run waits on a failure
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                r = running.pop(fut)
                if fut.result() == 2:
                    bad_input = 2
                print(f"[plan] {r.name}: {r.status} (exit {r.exit_code})", flush=True)
    record()
    if bad_input:
        print("error: a run exited with a bad-input error (2); the plan stopped", file=sys.stderr)
        return 2
    left = sum(r.status not in FINAL_STATUSES for r in runs)
    print(f"[plan] {len(runs) - left} of {len(runs)} runs final; wrote {out / 'plan.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
