#!/usr/bin/env bash
# Table 3 at the full local pool with controls (issue 14): the masked-LM BP pilot, then the plan
# (configs/experiments/lm_table3_full.yaml), two runs side by side with one thread each, then the report.
# Resumable: re-running skips finished runs and resumes killed ones from their last complete checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/lm1b}
RUNS=${RUNS:-runs}
A=.venv/bin/accelerate
.venv/bin/python scripts/unigram_baseline.py --data-dir "$DATA" data.max_length=32 --json reports/unigram_full_pool.json
[ -f "$RUNS/lm_full/pilot_mlm_bp/metrics.json" ] && grep -q '"status": "completed"' "$RUNS/lm_full/pilot_mlm_bp/metrics.json" || \
  $A launch scripts/train_lm.py --task mlm --algo bp --data-dir "$DATA" --seed 0 --threads 1 \
    --output-dir "$RUNS/lm_full/pilot_mlm_bp" data.max_length=32 $( [ -d "$RUNS/lm_full/pilot_mlm_bp/checkpoints" ] && echo --resume || echo --overwrite )
.venv/bin/python scripts/run_plan.py configs/experiments/lm_table3_full.yaml --output-dir "$RUNS/lm_table3_full" \
  --workers 2 --threads 1 ${METHODS:+--methods "$METHODS"} -- --data-dir "$DATA"
.venv/bin/python scripts/report_plan.py "$RUNS/lm_table3_full" --name lm_table3_full \
  --unigram reports/unigram_full_pool.json --step-costs reports/bench_step_idle_2a2a287.json --pilot "$RUNS/lm_full/pilot_mlm_bp" --notes reports/lm_table3_full.notes.md
