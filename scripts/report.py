#!/usr/bin/env python
"""Table-3 report of run folders or per-seed lists: `pclm.cli.report_runs` (also `pclm-report runs`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.report_runs import main, parse_args  # noqa: E402

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
