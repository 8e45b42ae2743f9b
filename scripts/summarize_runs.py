#!/usr/bin/env python
"""Summarise finished training runs into one table: reports/<name>.json and reports/<name>.md.

    python scripts/summarize_runs.py runs/issue3/* --name lm_single_seed_cpu --command "runs/issue3/run.sh"

Reads each run folder's metrics.json and config.yaml; copies both next to the report so the numbers keep their
provenance after the run folders are gone."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pclm.errors import ArgumentParser
from pclm.runs import MISSING, UNREADABLE, read_metrics

ROOT = Path(__file__).resolve().parents[1]
ORDER = {"bp": 0, "pc": 1, "ipc": 2}


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--command", default="", help="the command that produced the runs, quoted in the report")
    p.add_argument("--note", default="", help="one paragraph on scale and setting, quoted in the report")
    args = p.parse_args(argv)
    rows = []
    for run in args.runs:
        m = read_metrics(run)
        if m["status"] == MISSING:
            continue
        if m["status"] == UNREADABLE:
            print(f"error: cannot read '{run / 'metrics.json'}' ({m['error']})", file=sys.stderr)
            return 2
        rows.append(
            {
                "run": run.name,
                "task": m["task"],
                "algo": m["algo"],
                "seed": m["seed"],
                "status": m["status"],
                "epochs": m["epochs_run"],
                "init_dev_ppl": m.get("init_dev_ppl"),
                "dev_ppl_per_epoch": [h["dev_ppl"] for h in m["history"]],
                "dev_ppl": m.get("dev_ppl"),
                "test_ppl": m.get("test_ppl"),
                "test_sample_ppl": m.get("test_sample_ppl"),
                "train_seconds": m["train_seconds"],
                "data_sizes": m["data_sizes"],
                "machine": m["machine"],
            }
        )
    if not rows:
        print("error: no run folder with a metrics.json", file=sys.stderr)
        return 2
    rows.sort(
        key=lambda r: (r["task"], ORDER.get(r["algo"], 9), r["seed"])
    )  # stable: same-method runs keep their order
    out = ROOT / "reports"
    keep = out / args.name
    keep.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        for f in ("metrics.json", "config.yaml"):
            if (run / f).is_file():
                shutil.copy(run / f, keep / f"{run.name}.{f}")
    (out / f"{args.name}.json").write_text(
        json.dumps({"command": args.command, "note": args.note, "runs": rows}, indent=1)
    )

    def f(x):
        return "—" if x is None else f"{x:.1f}"

    lines = [
        f"# {args.name}",
        "",
        f"Command: `{args.command}`",
        "",
        args.note,
        "",
        "| run | task | algo | seed | status | untrained dev | dev ppl per epoch | best dev | test | 1B Word test sample (100) | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['task']} | {r['algo']} | {r['seed']} | {r['status']} | {f(r['init_dev_ppl'])} | "
            f"{', '.join(f(x) for x in r['dev_ppl_per_epoch'])} | {f(r['dev_ppl'])} | {f(r['test_ppl'])} | "
            f"{f(r['test_sample_ppl'])} | {r['train_seconds']:.0f} |"
        )
    sizes = rows[0]["data_sizes"]
    lines += ["", f"Split sizes (sentences): {json.dumps(sizes)}. Machine: {rows[0]['machine']}."]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
