#!/usr/bin/env python
"""Train a PCLM language model with BP, PC or iPC: `pclm.cli.train_lm` (also installed as `pclm-train-lm`).

accelerate launch scripts/train_lm.py --algo ipc
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.train_lm import main, parse_args  # noqa: E402

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
