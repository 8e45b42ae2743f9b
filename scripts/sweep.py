#!/usr/bin/env python
"""Grid search from a YAML file: one training run per grid point, the best selected on dev perplexity, resumable.

    python scripts/sweep.py configs/grids/clm_ipc.yaml --output-dir runs/grid_clm_ipc -- --data-dir ../shared/data/lm1b

The grid file names the task, the algorithm, fixed overrides and the grid (dotted keys -> lists of values):

    task: clm
    algo: ipc
    fixed: {train.epochs: 2, data.train_size: 2000}
    grid: {pc.inference_steps: [3, 4, 5, 6], train.lr: [0.0008, 0.0016, 0.0032]}

Each point runs as its own `accelerate launch scripts/train_lm.py` process in <output-dir>/<point name>; points whose
metrics.json holds a final status are skipped on a re-run, points with a checkpoint are resumed. Writes
<output-dir>/results.json and results.md: every point with its status, best dev and test perplexity, the best point
first, and the number of converged points (dev perplexity below --converged-below, default: no threshold).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import yaml

from pclm.runs import FINAL_STATUSES, default_launcher, launch_train, run_status, split_passthrough


def expand(grid: dict[str, list]) -> list[dict[str, object]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict[str, object]) -> str:
    return "_".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "default"


def collect(output_dir: Path, points: list[dict[str, object]], converged_below: float | None) -> list[dict]:
    rows = []
    for point in points:
        run = output_dir / point_name(point)
        try:
            m = json.loads((run / "metrics.json").read_text())
        except (OSError, ValueError):
            m = {"status": "missing"}
        dev = m.get("best_dev_ppl")
        ok = m.get("status") in FINAL_STATUSES - {"diverged"} and dev is not None and math.isfinite(dev)
        rows.append({"point": point, "dir": str(run), "status": m.get("status"), "best_dev_ppl": dev,
                     "test_ppl": m.get("test_ppl"),
                     "converged": ok and (converged_below is None or dev < converged_below)})
    rows.sort(key=lambda r: (not r["converged"], r["best_dev_ppl"] if r["best_dev_ppl"] is not None else math.inf))
    return rows


def write_results(output_dir: Path, spec: dict, rows: list[dict]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    converged = sum(r["converged"] for r in rows)
    (output_dir / "results.json").write_text(json.dumps({"spec": spec, "converged": converged, "points": rows}, indent=1))
    f = lambda x: "—" if x is None else f"{x:.2f}"  # noqa: E731
    lines = [f"# Grid: {spec['task']} {spec['algo']}", "", f"{converged} of {len(rows)} points converged; best first.",
             "", "| point | status | best dev ppl | test ppl |", "|---|---|---|---|"]
    lines += [f"| {point_name(r['point'])} | {r['status']} | {f(r['best_dev_ppl'])} | {f(r['test_ppl'])} |" for r in rows]
    (output_dir / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", type=Path)
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--converged-below", type=float)
    p.add_argument("--dry-run", action="store_true", help="list the points and write nothing")
    p.add_argument("--launcher", default=default_launcher())
    args = p.parse_args(argv)
    try:
        spec = yaml.safe_load(args.grid.read_text())
        task, algo, grid = spec["task"], spec["algo"], spec.get("grid") or {}
        fixed = spec.get("fixed") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError("'grid' must map dotted keys to non-empty lists")
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        print(f"error: bad grid file '{args.grid}': {err}", file=sys.stderr)
        return 2
    points = expand(grid)
    if args.dry_run:
        print("\n".join(point_name(pt) for pt in points))
        return 0
    for point in points:
        run = args.output_dir / point_name(point)
        if run_status(run) in FINAL_STATUSES:
            continue
        overrides = [f"{k}={v}" for k, v in {**fixed, **point}.items()]
        if launch_train(args.launcher, run, ["--task", task, "--algo", algo, *extra, *overrides]) == 2:
            print("error: bad input (see the line above); sweep stopped", file=sys.stderr)
            return 2
        write_results(args.output_dir, spec, collect(args.output_dir, points, args.converged_below))
    rows = collect(args.output_dir, points, args.converged_below)
    write_results(args.output_dir, spec, rows)
    print((args.output_dir / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
