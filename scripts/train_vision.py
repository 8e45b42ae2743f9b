#!/usr/bin/env python
"""Train a vision classifier with BP, PC, iPC or Z-IL: `pclm.cli.train_vision` (also installed as `pclm-train-vision`).

accelerate launch scripts/train_vision.py --model mlp --dataset mnist --algo ipc
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pclm, installed or not
from pclm.cli.train_vision import SHARED_DATA, default_data_dir, main, parse_args  # noqa: E402

__all__ = ["SHARED_DATA", "default_data_dir", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
