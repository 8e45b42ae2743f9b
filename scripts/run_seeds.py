#!/usr/bin/env python
"""Run a language model once per seed, each in its own process: `pclm.cli.run_seeds` (also `pclm-run seeds`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.run_seeds import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
