#!/usr/bin/env python
"""Report of an experiment plan run by scripts/run_plan.py: `pclm.cli.report_plan` (also `pclm-report plan`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.report_plan import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
