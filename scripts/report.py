#!/usr/bin/env python
"""Per-seed test perplexities, converged flags and a Table-3-style summary, written to reports/<name>.{json,md,png}.

    python scripts/report.py --name paper_table3 --seeds reports/paper_table3_seeds.json
    python scripts/report.py --name seeds_clm runs/seeds/clm_*      # run folders (or a folder of run folders)
    python scripts/report.py --name strict --threshold pc=500 --threshold ipc=150 runs/seeds

A seed converges when its run did not diverge or crash and its test perplexity is below the threshold of its
method (default: bp=200, ipc=200, pc=800). The PNG (dev perplexity per epoch) is made from run folders only.
Bad input exits with code 2 and one line, writing nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run folders holding metrics.json, or folders of run folders")
    p.add_argument("--seeds", help='JSON of per-seed test perplexities: {"clm": {"pc": [...], ...}, "mlm": {...}}')
    p.add_argument("--name", required=True, help="report name: writes <out-dir>/<name>.json, .md (and .png)")
    p.add_argument("--out-dir", default=str(ROOT / "reports"), help="default: the repository's reports/")
    p.add_argument("--threshold", action="append", metavar="ALGO=PPL",
                   help="convergence threshold of a method, repeatable (default: bp=200 ipc=200 pc=800)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from pclm.errors import UsageError
    from pclm.reporting import load_runs, load_seed_lists, parse_thresholds, table3, summarize, write_report

    try:
        if bool(args.runs) == bool(args.seeds):
            raise UsageError("give either run folders or --seeds JSON (exactly one of them)")
        if not args.name or "/" in args.name or args.name.startswith("."):
            raise UsageError(f"--name must be a plain file stem, got '{args.name}'")
        thresholds = parse_thresholds(args.threshold)
        results = load_seed_lists(args.seeds, thresholds) if args.seeds else load_runs(args.runs, thresholds)
        command = shlex.join(["python", "scripts/report.py", *argv])
        paths = write_report(results, thresholds, args.out_dir, args.name, command)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table3(summarize(results, thresholds)))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
