#!/usr/bin/env python
"""Run an experiment plan: dev tuning, then seeds, side by side: `pclm.cli.run_plan` (also `pclm-run plan`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.run_plan import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
