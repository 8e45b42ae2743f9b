#!/usr/bin/env python
"""Gather vision run folders (metrics.json of scripts/train_vision.py) into a rows x columns table of test accuracy,
one cell per row x column over its seeds, with the paper's numbers beside.

    pclm-report vision --output reports/vision_table1_mlp_cpu \\
        --cell "MLP on MNIST/BP=runs/a/seed0,runs/a/seed1" --paper "MLP on MNIST/BP=98.26±0.12" ...

`--cell ROW/COLUMN=DIR[,DIR...]` (repeatable; the last `/` before `=` splits row and column) names one cell's run
folders, one per seed; a missing folder or one without metrics.json counts as status `missing` (pclm.runs). `--paper
ROW/COLUMN=TEXT` puts the paper's number beside the cell. A cell reports every seed (status, test and best dev
accuracy, epochs, seconds) and, over the seeds that finished without diverging, the mean and the paper's "±" (HALF
the population standard deviation, as pclm/reporting.py), in percent. Each row also lists its columns ordered by mean,
with a note on what that order does not control.

Writes <output>.json and <output>.md. In the .md only the part between `<!-- generated -->` and `<!-- /generated -->`
is replaced when the file already has those markers, so hand-written context around the table survives a re-run.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

from pclm.errors import ArgumentParser, UsageError, report_usage_error
from pclm.folders import check_writable
from pclm.runs import MISSING, UNREADABLE, USABLE_STATUSES, read_metrics

BEGIN, END = "<!-- generated -->", "<!-- /generated -->"
# The order column ranks means only; what the runs were not equalised on must stay next to it.
ORDER_NOTE = (
    "'ours: order by mean' sorts a row's columns by mean test accuracy over the finished seeds. It is not a "
    "significance test, and it compares the runs as configured: it does not control for weight updates per "
    "batch (iPC takes T per batch) or for a learning rate tuned per method."
)


def split_key(item: str, flag: str) -> tuple[str, str, str]:
    key, sep, value = item.partition("=")
    row, slash, col = key.rpartition("/")
    if not sep or not slash or not row or not col or not value:
        raise UsageError(f"{flag} must be ROW/COLUMN=VALUE, got '{item}'")
    return row, col, value


def seed_row(run: Path) -> dict:
    m = read_metrics(run)
    if m["status"] in (MISSING, UNREADABLE):
        return {"dir": str(run), "status": m["status"]}
    return {
        "dir": str(run),
        "seed": m.get("seed"),
        "status": m["status"],
        "test_accuracy": m.get("test_accuracy"),
        "best_dev_accuracy": m.get("best_dev_accuracy"),
        "best_epoch": m.get("best_epoch"),
        "epochs_run": m.get("epochs_run"),
        "steps": m.get("steps"),
        "train_seconds": m.get("train_seconds"),
        "mean_seconds_per_epoch": m.get("mean_seconds_per_epoch"),
        "data_sizes": m.get("data_sizes"),
        "model_kwargs": m.get("model_kwargs"),
    }


def cell_stats(seeds: list[dict]) -> dict:
    done = [
        s["test_accuracy"] * 100
        for s in seeds
        if s["status"] in USABLE_STATUSES and s.get("test_accuracy") is not None and math.isfinite(s["test_accuracy"])
    ]
    return {
        "n": len(seeds),
        "finished": len(done),
        "mean": statistics.fmean(done) if done else None,
        "pm": statistics.pstdev(done) / 2 if done else None,
        "std": statistics.pstdev(done) if done else None,
        "min": min(done) if done else None,
        "max": max(done) if done else None,
    }


def fmt(stats: dict) -> str:
    if stats["mean"] is None:
        return "—"
    out = f"{stats['mean']:.2f}" + (f" ± {stats['pm']:.2f}" if stats["finished"] > 1 else "")  # no ± for one seed
    return out if stats["finished"] == stats["n"] else f"{out} ({stats['finished']}/{stats['n']} finished)"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def build(cells: dict, paper: dict) -> tuple[dict, str]:
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    table, lines = {}, []
    head = "| | " + " | ".join(f"{c} (ours) | {c} (paper)" for c in cols) + " | ours: order by mean |"
    lines += [head, "|---" * (2 * len(cols) + 2) + "|"]
    for r in rows:
        table[r] = {}
        parts = []
        for c in cols:
            seeds = [seed_row(Path(d)) for d in cells.get((r, c), [])]
            st = cell_stats(seeds) if seeds else None
            table[r][c] = {"seeds": seeds, "stats": st, "paper": paper.get((r, c))}
            parts += [fmt(st) if st else "", paper.get((r, c), "")]
        order = sorted(
            (c for c in cols if table[r][c]["stats"] and table[r][c]["stats"]["mean"] is not None),
            key=lambda c: -table[r][c]["stats"]["mean"],
        )
        lines.append(f"| {r} | " + " | ".join(parts) + " | " + " > ".join(order) + " |")
    lines += [
        "",
        ORDER_NOTE,
        "",
        "Every seed (test accuracy of the best-dev epoch, %):",
        "",
        "| row | column | seed | status | test acc | best dev acc | best epoch / run | steps | train s | "
        "s / epoch | train / dev / test images | run folder |",
        "|---" * 12 + "|",
    ]
    for r in rows:
        for c in cols:
            for s in table[r][c]["seeds"]:
                sizes = s.get("data_sizes") or {}
                lines.append(
                    f"| {r} | {c} | {s.get('seed', '—')} | {s['status']} | {pct(s.get('test_accuracy'))} | "
                    f"{pct(s.get('best_dev_accuracy'))} | {s.get('best_epoch', '—')} / "
                    f"{s.get('epochs_run', '—')} | {s.get('steps', '—')} | {s.get('train_seconds', '—')} | "
                    f"{s.get('mean_seconds_per_epoch', '—')} | {sizes.get('train', '—')} / "
                    f"{sizes.get('dev', '—')} / {sizes.get('test', '—')} | {s['dir']} |"
                )
    return {
        "rows": rows,
        "columns": cols,
        "table": table,
        "pm": "half the population standard deviation over the finished seeds (the paper's ±)",
    }, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", action="append", required=True, metavar="ROW/COLUMN=DIR[,DIR...]")
    p.add_argument("--paper", action="append", default=[], metavar="ROW/COLUMN=TEXT")
    p.add_argument("--output", required=True, help="output stem: <output>.json and <output>.md")
    args = p.parse_args(argv)
    cells: dict[tuple[str, str], list[str]] = {}
    paper = {}
    try:
        for item in args.cell:
            r, c, v = split_key(item, "--cell")
            cells[(r, c)] = [d for d in v.split(",") if d]
        for item in args.paper:
            r, c, v = split_key(item, "--paper")
            paper[(r, c)] = v
        out = Path(args.output)
        md_path = out.with_suffix(".md")
        check_writable([out.with_suffix(".json"), md_path], "the folder of --output")
        try:
            old = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read '{md_path}' to keep its hand-written text: {err}") from None
    except UsageError as err:
        return report_usage_error(err)
    data, md = build(cells, paper)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    block = f"{BEGIN}\n{md}\n{END}"
    if BEGIN in old and END in old:
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, old, flags=re.S)
    else:
        new = block + "\n"
    md_path.write_text(new)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
