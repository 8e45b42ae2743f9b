#!/usr/bin/env bash
# The fidelity ladder (issue 25): experiments/lm_fidelity/lm_fidelity_ladder.yaml, two runs side by side with one thread
# each, then the report. Resumable: re-running skips finished runs and resumes killed ones from their last complete
# checkpoint. RUNS and DATA may be set; STOP_AFTER (seconds) starts no new run after that long. Every finished run's
# metrics.json is copied to reports/lm_fidelity_ladder_runs/ (the run folder's layout), from which the report is made,
# so it can be rebuilt after the machine that ran them is gone. PLAN=lm_fidelity_lr runs the lr probe the same way;
# PLAN=lm_fidelity_bf16 with LAUNCHER="accelerate launch --mixed_precision bf16" the bf16 check.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/lm1b}
RUNS=${RUNS:-runs}
PLAN=${PLAN:-lm_fidelity_ladder}
.venv/bin/python scripts/run_plan.py "experiments/lm_fidelity/$PLAN.yaml" --output-dir "$RUNS/$PLAN" \
  --workers 2 --threads 1 ${LAUNCHER:+--launcher "$LAUNCHER"} ${METHODS:+--methods "$METHODS"} ${STOP_AFTER:+--stop-after "$STOP_AFTER"} -- --data-dir "$DATA"
for m in "$RUNS/$PLAN"/seeds/*/seed*/metrics.json; do
  grep -q '"status": "running"' "$m" && continue
  dest="reports/lm_fidelity_ladder_runs/${m#"$RUNS/$PLAN"/}"
  mkdir -p "$(dirname "$dest")" && cp "$m" "$dest"
done
.venv/bin/python experiments/lm_fidelity/report_ladder.py reports/lm_fidelity_ladder_runs \
  --plan experiments/lm_fidelity/lm_fidelity_ladder.yaml --probe experiments/lm_fidelity/lm_fidelity_lr.yaml \
  --sizes experiments/lm_fidelity/lm_fidelity_pool.yaml --notes reports/lm_fidelity_ladder.notes.md --unigram reports/unigram_ladder.json
