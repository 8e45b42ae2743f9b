#!/usr/bin/env python
"""Per-seed test perplexities, converged flags and a Table-3-style summary, written to reports/<name>.{json,md,png}.

    python scripts/report.py --name paper_table3 --seeds reports/paper_table3_seeds.json
    python scripts/report.py --name seeds_clm runs/seeds/clm_*      # run folders (or a folder of run folders)
    python scripts/report.py --name strict --threshold pc=500 --threshold ipc=150 runs/seeds
    python scripts/report.py --name cpu --threshold clm:ipc=1322.1 --unigram clm=1322.1 runs/table3/clm_*

A seed converges when its run did not diverge or crash and its test perplexity is below the threshold of its
method (default: bp=200, ipc=200, pc=800; `TASK:ALGO=PPL` sets one task's threshold). `--unigram TASK=PPL` adds a
column with a unigram model's perplexity on the same targets (pclm.cli.unigram_baseline). The PNG (dev perplexity per
epoch) is made from run folders only.
Bad input exits with code 2 and one line, writing nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run folders holding metrics.json, or folders of run folders")
    p.add_argument("--seeds", help='JSON of per-seed test perplexities: {"clm": {"pc": [...], ...}, "mlm": {...}}')
    p.add_argument("--name", required=True, help="report name: writes <out-dir>/<name>.json, .md (and .png)")
    p.add_argument("--out-dir", default=str(ROOT / "reports"), help="default: the repository's reports/")
    p.add_argument(
        "--threshold",
        action="append",
        metavar="[TASK:]ALGO=PPL",
        help="convergence threshold of a method, repeatable (default: bp=200 ipc=200 pc=800)",
    )
    p.add_argument(
        "--unigram",
        action="append",
        metavar="TASK=PPL",
        help="a unigram model's test perplexity on the same targets, shown beside the methods",
    )
    return p.parse_args(argv)


def parse_unigram(items: list[str] | None) -> dict[str, float]:
    from pclm.errors import UsageError
    from pclm.reporting import TASKS

    unigram = {}
    for item in items or []:
        task, sep, value = item.partition("=")
        try:
            unigram[task] = float(value)
        except ValueError:
            sep = ""
        if not sep or task not in TASKS or not unigram[task] > 0:
            raise UsageError(f"--unigram must be TASK=PERPLEXITY with TASK in {'|'.join(TASKS)}, got '{item}'")
    return unigram


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from pclm.errors import UsageError
    from pclm.reporting import load_runs, load_seed_lists, parse_thresholds, summarize, table3, write_report

    try:
        if bool(args.runs) == bool(args.seeds):
            raise UsageError("give either run folders or --seeds JSON (exactly one of them)")
        if not args.name or "/" in args.name or args.name.startswith("."):
            raise UsageError(f"--name must be a plain file stem, got '{args.name}'")
        thresholds = parse_thresholds(args.threshold)
        unigram = parse_unigram(args.unigram)
        results = load_seed_lists(args.seeds, thresholds) if args.seeds else load_runs(args.runs, thresholds)
        command = shlex.join(["python", "scripts/report.py", *argv])
        paths = write_report(results, thresholds, args.out_dir, args.name, command, unigram)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table3(summarize(results, thresholds), unigram))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
