#!/usr/bin/env bash
# fp32 vs bf16 autocast on short runs of each algorithm (configs/experiments/bf16_cost.yaml); then
# python scripts/report_plan.py runs/bf16_cost/fp32 --name bf16_cost_fp32 ... (see reports/bf16_cost.md)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/lm1b}
A=.venv/bin/accelerate
.venv/bin/python scripts/run_plan.py configs/experiments/bf16_cost.yaml --output-dir runs/bf16_cost/fp32 --threads 1 \
  --launcher "$A launch" -- --data-dir "$DATA"
.venv/bin/python scripts/run_plan.py configs/experiments/bf16_cost.yaml --output-dir runs/bf16_cost/bf16 --threads 1 \
  --launcher "$A launch --mixed_precision bf16" -- --data-dir "$DATA"
