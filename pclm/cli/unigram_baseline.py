#!/usr/bin/env python
"""Unigram perplexity on the same split and targets as a train_lm.py run, for both tasks.

    python -m pclm.cli.unigram_baseline --data-dir ../shared/data/lm1b data.train_size=2000 data.dev_size=500 \
        data.max_length=32 --json reports/unigram_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*", help="data.* overrides, as given to train_lm.py")
    args = p.parse_args(argv)
    from pclm.config import load_config
    from pclm.errors import UsageError
    from pclm.evaluation.baselines import unigram_log_probs, unigram_perplexity
    from pclm.folders import check_writable
    from pclm.training.lm import _lm_data, load_tokenizer

    out = {}
    try:
        if args.json:
            check_writable([args.json], "the folder of --json")
        for task in ("clm", "mlm"):
            cfg = load_config(ROOT / "configs" / f"{task}_bp.yaml", args.overrides, **{"data.data_dir": args.data_dir})
            tokenizer = load_tokenizer(cfg.data.tokenizer)
            data = _lm_data(cfg, tokenizer)
            log_probs = unigram_log_probs(data["train"]["input_ids"], len(tokenizer))
            out[task] = {
                split: unigram_perplexity(log_probs, ds, task) for split, ds in data.items() if split != "train"
            }
            out[task]["data_sizes"] = {split: len(ds) for split, ds in data.items()}
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out["command"] = "python -m pclm.cli.unigram_baseline " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
