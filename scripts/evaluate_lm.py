#!/usr/bin/env python
"""Perplexity of a pclm checkpoint on a text file, one sentence per line: `pclm.cli.evaluate_lm` (also installed as
`pclm-evaluate-lm`).

    python scripts/evaluate_lm.py runs/clm_ipc_seed0/best sentences.txt [--max-length 64] [--json scores.json]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.evaluate_lm import main, parse_args  # noqa: E402

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
