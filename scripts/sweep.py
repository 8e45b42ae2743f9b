#!/usr/bin/env python
"""Grid search from a YAML file, one training run per grid point: `pclm.cli.sweep` (also `pclm-run sweep`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.sweep import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
