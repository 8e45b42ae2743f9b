#!/bin/bash
# Partial multi-seed run (issue 4 machinery end to end): conditional LM, BP and iPC, seeds 0-2, CPU scale.
cd /work/main
COMMON="--data-dir ../shared/data/lm1b data.train_size=2000 data.dev_size=500 data.max_length=32 train.epochs=2 train.patience=0 train.tracker=none"
.venv/bin/python scripts/run_seeds.py --task clm --algo bp --seeds 0-2 --output-dir runs/seeds/clm_bp -- $COMMON > runs/seeds/clm_bp.log 2>&1
.venv/bin/python scripts/run_seeds.py --task clm --algo ipc --seeds 0-2 --output-dir runs/seeds/clm_ipc -- $COMMON > runs/seeds/clm_ipc.log 2>&1
