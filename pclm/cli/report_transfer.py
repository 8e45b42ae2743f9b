#!/usr/bin/env python
"""Do a plan's test perplexities hold on other text? Score every finished seed's best model on a text file and set
the result beside the test perplexity its training job reported.

    python -m pclm.cli.report_transfer /work/runs/lm_table3_full ../shared/data/lm1b/samples/heldout-00000.sample100.ordered.txt \\
        --name lm_table3_full_transfer --max-length 32 --mask-seeds 0-19

For each run folder `<plan_dir>/seeds/<method>/seed<k>/` whose metrics.json has a test perplexity and whose `best/`
exists, the text is scored as `scripts/evaluate_lm.py` scores it (`pclm.cli.evaluate_lm.score`): a causal model on
every next token, a masked model under each fixed masking of --mask-seeds with the NLL pooled over all their masked
tokens (one masking of 100 sentences holds about 400 targets, and its perplexity swings by ±15% with the draw).
Beside a masked model: its run's own score on the release's 100-sentence sample under the one masking training
used (metrics.json's `test_sample_ppl`), whatever the text. Writes reports/<name>.{md,json}.

A run whose `best/` is gone (a replaced machine) keeps its row from the report's last version, marked `(earlier)`,
while the text (its SHA-256) and the run's test perplexity are unchanged: a re-run adds new seeds and loses none.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan_dir", type=Path, help="the --output-dir of scripts/run_plan.py")
    p.add_argument("text", type=Path, help="UTF-8 text, one sentence per line")
    p.add_argument("--name", required=True, help="report file stem")
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    p.add_argument("--max-length", type=int, default=32, help="tokens per sentence, as the runs were trained")
    p.add_argument("--mask-seeds", default="0-19", help="masked models: fixed maskings pooled (default 0-19)")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def finished_runs(plan_dir: Path) -> list[tuple[str, int, Path, dict]]:
    from pclm.runs import read_metrics

    out = []
    for folder in sorted((plan_dir / "seeds").glob("*/seed*")):
        m = read_metrics(folder)
        if m.get("test_ppl") is not None and (folder / "best" / "config.json").is_file():
            out.append((folder.parent.name, int(folder.name.removeprefix("seed")), folder, m))
    return out


def earlier_rows(
    report: Path, text: Path, text_sha256: str, n_sentences: int, runs: list[tuple], plan_dir: Path
) -> list[dict]:
    """The rows of an earlier version of this report for seeds not among `runs`: same text (a report written before
    the hash was recorded: same path and sentence count), same test perplexity in the run's metrics.json now."""
    from pclm.errors import UsageError
    from pclm.runs import read_metrics

    if not report.is_file():
        return []
    try:
        raw = report.read_text()
    except OSError as err:
        raise UsageError(f"cannot read '{report}': {err.strerror or type(err).__name__}") from None
    try:
        doc = json.loads(raw)
        same_text = (
            doc["text_sha256"] == text_sha256
            if "text_sha256" in doc
            else (doc.get("text"), doc.get("sentences")) == (str(text), n_sentences)
        )
        if not same_text:
            return []
        scored = {(method, seed) for method, seed, _, _ in runs}
        out = []
        for r in doc.get("runs", []):
            if (r["method"], r["seed"]) in scored:
                continue
            m = read_metrics(plan_dir / "seeds" / str(r["method"]) / f"seed{int(r['seed'])}")
            if m.get("test_ppl") == r["test_ppl"]:
                out.append({**r, "scored": "earlier"})
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(
            f"'{report}' is not a report this tool wrote ({type(err).__name__}); move it aside to start it afresh"
        ) from None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pclm.cli.evaluate_lm import _DEFAULT_MLM_PROBABILITY, read_config, read_sentences, score
    from pclm.errors import UsageError, report_usage_error
    from pclm.folders import check_writable
    from pclm.runs import parse_seeds

    try:
        if "/" in args.name or args.name.startswith(".") or not args.name:
            raise UsageError(f"--name must be a plain file stem, got '{args.name}'")
        try:
            mask_seeds = parse_seeds(args.mask_seeds)
        except ValueError as err:
            raise UsageError(f"--mask-seeds: {err}") from None
        if args.max_length < 2 or args.batch_size < 1:
            raise UsageError("need --max-length >= 2 and --batch-size >= 1")
        if not (args.plan_dir / "seeds").is_dir():
            raise UsageError(f"'{args.plan_dir}' has no seeds/ folder (not a run_plan.py output)")
        report = args.out_dir / f"{args.name}.json"
        check_writable([report, report.with_suffix(".md")], "--out-dir")
        sentences = read_sentences(args.text)
        text_sha256 = hashlib.sha256(args.text.read_bytes()).hexdigest()
        runs = finished_runs(args.plan_dir)
        kept = earlier_rows(report, args.text, text_sha256, len(sentences), runs, args.plan_dir)
        if not runs and not kept:
            raise UsageError(f"no finished seed with a best/ model under '{args.plan_dir / 'seeds'}'")
    except UsageError as err:
        return report_usage_error(err)

    rows = []
    for method, seed, folder, m in runs:
        causal = bool(read_config(folder / "best").get("is_decoder"))
        s = score(
            folder / "best", sentences, causal, args.max_length, args.batch_size, _DEFAULT_MLM_PROBABILITY, mask_seeds
        )
        counts = m.get("ppl_counts", "</s> in") if causal else "masked"  # the text is scored in the run's count
        text_ppl = s["ppl_eos_out"] if counts == "</s> out" else s["ppl"]
        rows.append(
            {
                "method": method,
                "seed": seed,
                "status": m["status"],
                "counts": counts,
                "test_size": m.get("data_sizes", {}).get("test"),
                "test_ppl": m["test_ppl"],
                "test_sample_ppl": m.get("test_sample_ppl"),
                "text_ppl": text_ppl,
                "text_targets": s["targets"],
                "ratio": text_ppl / m["test_ppl"],
                "scored": "now",
            }
        )
        print(f"{method} seed {seed}: test {m['test_ppl']:.1f}, text {text_ppl:.1f} ({text_ppl / m['test_ppl']:.3f}x)")
    rows = sorted(rows + kept, key=lambda r: (r["method"], r["seed"]))
    command = "python -m pclm.cli.report_transfer " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {
        "command": command,
        "text": str(args.text),
        "text_sha256": text_sha256,
        "sentences": len(sentences),
        "mask_seeds": mask_seeds,
        "runs": rows,
    }
    lines = [
        f"# {args.name}",
        "",
        f"Command: `{command}`",
        "",
        f"Text: `{args.text}`, {len(sentences)} sentences, cut to {args.max_length} tokens. Masked models: NLL pooled "
        f"over {len(mask_seeds)} fixed maskings (seeds {args.mask_seeds}, {100 * _DEFAULT_MLM_PROBABILITY:.0f}% of tokens). "
        "Test perplexity: the "
        "training job's, on its test split (sentences per run below); a causal model's text is scored in the count "
        "its run selected (`</s>` in or out, `data.count_eos`). Status `(earlier)`: scored by an earlier version of "
        "this report, the model since gone.",
        "",
        "| method | seed | status | count | test sentences | test ppl | text ppl | text / test | masked: the run's "
        "official-sample ppl (one masking, training's seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        single = "–" if r["test_sample_ppl"] is None or r["counts"] != "masked" else f"{r['test_sample_ppl']:.1f}"
        status = r["status"] + (" (earlier)" if r["scored"] == "earlier" else "")
        lines.append(
            f"| {r['method']} | {r['seed']} | {status} | {r['counts']} | {r['test_size'] or '–'} | "
            f"{r['test_ppl']:.1f} | {r['text_ppl']:.1f} | {r['ratio']:.3f} | {single} |"
        )
    lines += ["", "| method | seeds | text / test: mean (min–max) |", "|---|---|---|"]
    for method in sorted({r["method"] for r in rows}):
        ratios = [r["ratio"] for r in rows if r["method"] == method]
        lines.append(
            f"| {method} | {len(ratios)} | {statistics.fmean(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}) |"
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out_dir / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out_dir / args.name}.{{md,json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
