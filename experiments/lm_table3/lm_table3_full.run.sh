#!/usr/bin/env bash
# Table 3 at the full local pool with controls (issue 14): the masked-LM BP pilot, then the plan
# (experiments/lm_table3/lm_table3_full.yaml), two runs side by side with one thread each, then the reports.
# Resumable: re-running skips finished runs and resumes killed ones from their last complete checkpoint.
# These runs predate heldout 00000 and the 47-shard pool in ../shared/data/lm1b: "data.shards=10-12 data.test=pool" selects the pool
# they used (heldout 10-12, test drawn from it), so the commands reproduce them with today's data folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/lm1b}
RUNS=${RUNS:-runs}
A=.venv/bin/accelerate
.venv/bin/python -m pclm.cli.unigram_baseline --data-dir "$DATA" data.shards=10-12 data.test=pool data.max_length=32 --json reports/unigram_full_pool.json
[ -f "$RUNS/lm_full/pilot_mlm_bp/metrics.json" ] && grep -q '"status": "completed"' "$RUNS/lm_full/pilot_mlm_bp/metrics.json" || \
  $A launch scripts/train_lm.py --task mlm --algo bp --data-dir "$DATA" --seed 0 --threads 1 data.shards=10-12 data.test=pool \
    --output-dir "$RUNS/lm_full/pilot_mlm_bp" data.max_length=32 $( [ -d "$RUNS/lm_full/pilot_mlm_bp/checkpoints" ] && echo --resume || echo --overwrite )
.venv/bin/python scripts/run_plan.py experiments/lm_table3/lm_table3_full.yaml --output-dir "$RUNS/lm_table3_full" \
  --workers 2 --threads 1 ${METHODS:+--methods "$METHODS"} -- --data-dir "$DATA" data.shards=10-12 data.test=pool
.venv/bin/python scripts/report_plan.py "$RUNS/lm_table3_full" --name lm_table3_full \
  --unigram reports/unigram_full_pool.json --step-costs reports/bench_step_idle_2a2a287.json --pilot "$RUNS/lm_full/pilot_mlm_bp" --notes reports/lm_table3_full.notes.md
# Conditional tuned PC, seeds 1-4 at the point the dev grid above selected: their own plan, because the first tries
# at seeds 1-2 died with the machine that ran them (a fresh run of the plan above trains seeds 1-2 there too).
.venv/bin/python scripts/run_plan.py experiments/lm_table3/lm_table3_full_clm_pc_tuned.yaml \
  --output-dir "$RUNS/lm_table3_full_clm_pc_tuned" --workers 2 --threads 1 -- --data-dir "$DATA" data.shards=10-12 data.test=pool
.venv/bin/python scripts/report_plan.py "$RUNS/lm_table3_full_clm_pc_tuned" --name lm_table3_full_clm_pc_tuned \
  --unigram reports/unigram_full_pool.json --step-costs reports/bench_step_idle_2a2a287.json \
  --notes reports/lm_table3_full_clm_pc_tuned.notes.md
# every finished seed on the release's official 100-sentence sample (not in the pool)
SAMPLE="$DATA/samples/heldout-00000.sample100.ordered.txt"
.venv/bin/python -m pclm.cli.report_transfer "$RUNS/lm_table3_full" "$SAMPLE" --name lm_table3_full_transfer \
  --max-length 32 --mask-seeds 0-19
.venv/bin/python -m pclm.cli.report_transfer "$RUNS/lm_table3_full_clm_pc_tuned" "$SAMPLE" \
  --name lm_table3_full_clm_pc_tuned_transfer --max-length 32
