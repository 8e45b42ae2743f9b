#!/usr/bin/env python
"""Grid search from a YAML file: one training run per grid point, the best selected on dev perplexity (language
models) or dev accuracy (vision), resumable.

    python scripts/sweep.py configs/grids/clm_ipc.yaml --output-dir runs/grid_clm_ipc -- --data-dir ../shared/data/lm1b
    python scripts/sweep.py configs/grids/vision_mlp_robustness_ipc.yaml --output-dir runs/grid_vision_mlp_ipc

The grid file names the task, the algorithm, fixed overrides and the grid (dotted keys -> lists of values):

    task: clm
    algo: ipc
    fixed: {train.epochs: 2, data.train_size: 2000}
    grid: {pc.inference_steps: [3, 4, 5, 6], train.lr: [0.0008, 0.0016, 0.0032]}

`script` names the training script in scripts/ (default train_lm.py). A vision grid sets `script: train_vision.py`
and names `model` and `dataset` (and `algo`) instead of `task`; a grid key may be any config key of that script.

Each point runs as its own `accelerate launch scripts/<script>` process in <output-dir>/<point name>; points whose
metrics.json holds a final status are skipped on a re-run, points with a checkpoint are resumed. Writes
<output-dir>/results.json and results.md: every point with its status, best dev and test score, the best point
first, and the number of converged points. Statuses are those of pclm.runs (a point without metrics.json is
`missing`). Converged means: status completed, early_stopped or max_steps (not diverged, missing or unreadable) and
* language models: best dev perplexity finite and below --converged-below (default: no threshold);
* vision: final test accuracy (of the best-dev model; dev accuracy if no test score) above --converged-above
  (default: twice chance, 2 / classes, i.e. 0.2 for 10 classes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path

import yaml

from pclm.errors import ArgumentParser, one_line
from pclm.folders import write_atomic
from pclm.runs import (
    FINAL_STATUSES,
    TRAIN_SCRIPT,
    USABLE_STATUSES,
    check_folder_name,
    default_launcher,
    format_override,
    format_value,
    launch_train,
    read_metrics,
    run_status,
    split_passthrough,
)

SCRIPTS = TRAIN_SCRIPT.parent  # the checkout's scripts/: the training commands a run launches
VISION_SCRIPT = "train_vision.py"
TRAIN_SCRIPTS = ("train_lm.py", VISION_SCRIPT)
CONFIG_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
USABLE_RULE = " / ".join(USABLE_STATUSES)  # "completed / early_stopped / max_steps"


def is_vision(spec: dict) -> bool:
    return spec.get("script", "train_lm.py") == VISION_SCRIPT


def default_converged_above(spec: dict) -> float:
    """Twice chance for the grid's data set (0.2 for 10 classes)."""
    from pclm.data.vision import VISION_DATASETS

    classes = VISION_DATASETS.get(spec.get("dataset", "mnist"), (None, None, 10))[2]
    return 2.0 / classes


MAX_POINTS = 10_000  # a bigger grid is a typo (10^16 points once took the machine's memory): refused before expanding


def expand(grid: dict[str, list]) -> list[dict[str, object]]:
    """Every point of `grid`; ValueError when it has more than MAX_POINTS."""
    keys = list(grid)
    if math.prod(len(grid[k]) for k in keys) > MAX_POINTS:
        raise ValueError(f"the grid has more than {MAX_POINTS:,} points")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict[str, object]) -> str:
    return "_".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in point.items()) or "default"


def collect(output_dir: Path, points: list[dict[str, object]], converged_below: float | None) -> list[dict]:
    rows = []
    for point in points:
        run = output_dir / point_name(point)
        m = read_metrics(run)
        dev = m.get("best_dev_ppl")
        ok = m["status"] in USABLE_STATUSES and dev is not None and math.isfinite(dev)
        rows.append(
            {
                "point": point,
                "dir": str(run),
                "status": m["status"],
                "best_dev_ppl": dev,
                "test_ppl": m.get("test_ppl"),
                "converged": ok and (converged_below is None or dev < converged_below),
            }
        )
    rows.sort(key=lambda r: (not r["converged"], r["best_dev_ppl"] if r["best_dev_ppl"] is not None else math.inf))
    return rows


def collect_vision(output_dir: Path, points: list[dict[str, object]], converged_above: float) -> list[dict]:
    """Vision points, best dev accuracy first; converged = final status other than diverged and final test accuracy
    (dev accuracy when there is no test score) above `converged_above`."""
    rows = []
    for point in points:
        run = output_dir / point_name(point)
        m = read_metrics(run)
        dev, test = m.get("best_dev_accuracy"), m.get("test_accuracy")
        final = test if test is not None else dev
        ok = m["status"] in USABLE_STATUSES and final is not None and math.isfinite(final)
        rows.append(
            {
                "point": point,
                "dir": str(run),
                "status": m["status"],
                "best_dev_accuracy": dev,
                "test_accuracy": test,
                "converged": ok and final > converged_above,
            }
        )
    rows.sort(
        key=lambda r: (
            not r["converged"],
            -(
                r["best_dev_accuracy"]
                if r["best_dev_accuracy"] is not None and math.isfinite(r["best_dev_accuracy"])
                else -math.inf
            ),
        )
    )
    return rows


def write_results(output_dir: Path, spec: dict, rows: list[dict], rule: str | None = None) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    converged = sum(r["converged"] for r in rows)
    out = {"spec": spec, "converged": converged, "converged_rule": rule, "points": rows}
    write_atomic(output_dir / "results.json", json.dumps(out, indent=1))
    if is_vision(spec):
        f = lambda x: "—" if x is None else f"{100 * x:.2f}%"  # noqa: E731
        title = f"{spec.get('model', '')} {spec.get('dataset', '')} {spec.get('algo', '')}".strip()
        head, cols = "| point | status | best dev accuracy | test accuracy |", ("best_dev_accuracy", "test_accuracy")
    else:
        f = lambda x: "—" if x is None else f"{x:.2f}"  # noqa: E731
        title = f"{spec['task']} {spec['algo']}"
        head, cols = "| point | status | best dev ppl | test ppl |", ("best_dev_ppl", "test_ppl")
    lines = [f"# Grid: {title}", "", f"{converged} of {len(rows)} points converged; best first."]
    if rule:
        lines += ["", f"Converged: {rule}."]
    lines += ["", head, "|---|---|---|---|"]
    lines += [f"| {point_name(r['point'])} | {r['status']} | {f(r[cols[0]])} | {f(r[cols[1]])} |" for r in rows]
    write_atomic(output_dir / "results.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", type=Path)
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--converged-below", type=float, help="language models: dev perplexity threshold")
    p.add_argument(
        "--converged-above",
        type=float,
        help="vision: test accuracy threshold, a fraction (default: 2 / classes, twice chance)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the points and write nothing")
    p.add_argument("--launcher", default=default_launcher())
    args = p.parse_args(argv)
    from pclm.runs import refuse_bad_launcher

    if refuse_bad_launcher(args.launcher):
        return 2
    try:
        spec = yaml.safe_load(args.grid.read_text())
        grid, fixed = spec.get("grid") or {}, spec.get("fixed") or {}
        name = spec.get("script", "train_lm.py")
        if name not in TRAIN_SCRIPTS:  # a grid file names one of these, never a path to run
            raise ValueError(f"no training script '{name}' (choose from {', '.join(TRAIN_SCRIPTS)})")
        script = SCRIPTS / name
        if not isinstance(fixed, dict):
            raise ValueError("'fixed' must map dotted keys to values")
        if is_vision(spec):
            flags = [f"--{key}={spec[key]}" for key in ("model", "dataset", "algo") if key in spec]
        else:
            flags = ["--task", spec["task"], "--algo", spec["algo"]]
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError("'grid' must map dotted keys to non-empty lists")
        if not grid:
            raise ValueError("'grid' is empty: name at least one dotted key and its values")
        for key in [*grid, *fixed]:  # config keys only: "--output-dir" here would redirect the run
            if not isinstance(key, str) or not CONFIG_KEY.fullmatch(key):
                raise ValueError(f"'{key}' is not a dotted config key (section.key)")
        points = expand(grid)
        for point in points:
            check_folder_name(point_name(point))
        if args.output_dir.exists() and not args.output_dir.is_dir():
            raise ValueError(f"--output-dir '{args.output_dir}' is a file")
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as err:
        print(f"error: bad grid file '{args.grid}': {one_line(err)}", file=sys.stderr)
        return 2
    if is_vision(spec):
        above = default_converged_above(spec) if args.converged_above is None else args.converged_above
        rule = f"status {USABLE_RULE} and final test accuracy above {100 * above:.1f}%" + (
            " (twice chance)" if args.converged_above is None else ""
        )
        gather = lambda: collect_vision(args.output_dir, points, above)  # noqa: E731
    else:
        rule = f"status {USABLE_RULE} and finite best dev perplexity" + (
            f" below {args.converged_below}" if args.converged_below is not None else ""
        )
        gather = lambda: collect(args.output_dir, points, args.converged_below)  # noqa: E731
    if args.dry_run:
        print("\n".join(point_name(pt) for pt in points))
        return 0
    for point in points:
        run = args.output_dir / point_name(point)
        if run_status(run) in FINAL_STATUSES:
            continue
        overrides = [format_override(k, v) for k, v in {**fixed, **point}.items()]
        if launch_train(args.launcher, run, [*flags, *extra, *overrides], script=script) == 2:
            # bad input (its `error:` line is above): the rest of the grid shares most of it, so stop here
            print(f"stopped at point {point_name(point)}: the training script refused its input", file=sys.stderr)
            return 2
        write_results(args.output_dir, spec, gather(), rule)
    write_results(args.output_dir, spec, gather(), rule)
    print((args.output_dir / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
