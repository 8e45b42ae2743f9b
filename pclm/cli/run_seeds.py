#!/usr/bin/env python
"""Run N seeds of one task x algorithm x config, each in its own folder, resumably.

    python scripts/run_seeds.py --task clm --algo ipc --seeds 0-4 --output-dir runs/clm_ipc \
        -- --data-dir ../shared/data/lm1b train.epochs=2

Each seed runs as its own `accelerate launch scripts/train_lm.py` process (arguments after `--` are passed on), so a
crash or divergence stays inside its seed: it is recorded and the sweep goes on. Re-running skips seeds whose
metrics.json holds a final status, resumes seeds with a checkpoint, and starts the rest. `--shard i/n` runs only
seeds with index % n == i, so a cluster runs one job per shard (or per seed: `--seeds 7`) under its own scheduler.
Writes <output-dir>/seeds.json: each seed's folder, exit code and status (pclm.runs; `crashed` when its process ended
without a final status in metrics.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pclm.errors import ArgumentParser, UsageError
from pclm.folders import write_atomic
from pclm.runs import (
    FINAL_STATUSES,
    check_folder_name,
    default_launcher,
    launch_train,
    parse_seeds,
    run_status,
    split_passthrough,
    status_after_launch,
)


def parse_shard(text: str) -> tuple[int, int]:
    """ "i/n" -> (i, n) with 0 <= i < n; ValueError otherwise."""
    i, slash, n = text.partition("/")
    if not (slash and i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise ValueError(f"--shard must be i/n with 0 <= i < n, got '{text}'")
    return int(i), int(n)


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True)
    p.add_argument("--algo", required=True)
    p.add_argument("--seeds", default="0-4", help="e.g. 0-9 or 0,3,5")
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--shard", default="0/1", help="i/n: run the seeds whose index %% n == i")
    p.add_argument("--launcher", default=default_launcher(), help="command that starts one training process")
    args = p.parse_args(argv)
    from pclm.runs import refuse_bad_launcher

    if refuse_bad_launcher(args.launcher):
        return 2
    try:
        seeds = parse_seeds(args.seeds)
        shard, shards = parse_shard(args.shard)
        for seed in seeds:
            check_folder_name(f"seed{seed}")
    except (ValueError, UsageError) as err:
        print(f"error: bad --seeds '{args.seeds}' or --shard '{args.shard}': {err}", file=sys.stderr)
        return 2
    if args.output_dir.exists() and not args.output_dir.is_dir():
        print(f"error: --output-dir '{args.output_dir}' is a file", file=sys.stderr)
        return 2
    summary_path = args.output_dir / "seeds.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if not isinstance(summary, dict):
            raise ValueError("not a mapping of seeds")
    except (OSError, ValueError) as err:
        print(f"error: cannot read '{summary_path}' ({err}): move it away to start the summary afresh", file=sys.stderr)
        return 2
    for index, seed in enumerate(seeds):
        if index % shards != shard:
            continue
        run = args.output_dir / f"seed{seed}"
        status = run_status(run)
        if status in FINAL_STATUSES:
            print(f"seed {seed}: {status}, skipped")
            summary[str(seed)] = {
                "dir": str(run),
                "status": status,
                "exit_code": summary.get(str(seed), {}).get("exit_code"),
            }
            continue
        code = launch_train(args.launcher, run, ["--task", args.task, "--algo", args.algo, "--seed", str(seed), *extra])
        if code == 2:  # bad input (its `error:` line is above): the same for every seed, so stop here
            print(f"stopped at seed {seed}: the training script refused its input", file=sys.stderr)
            return 2
        summary[str(seed)] = {"dir": str(run), "status": status_after_launch(run), "exit_code": code}
        args.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(summary_path, json.dumps(summary, indent=1))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(summary_path, json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
