#!/usr/bin/env bash
# The fidelity ladder's lr probe (issue 25): experiments/lm_fidelity/lm_fidelity_lr.yaml, two runs side by side with one
# thread each, then the ladder's report (which lists the probe's rows). Resumable like experiments/lm_fidelity/lm_fidelity_ladder.run.sh;
# every finished run's metrics.json is copied to reports/lm_fidelity_ladder_runs/ (method names end in _lr<digits>).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/lm1b}
RUNS=${RUNS:-runs}
.venv/bin/python scripts/run_plan.py experiments/lm_fidelity/lm_fidelity_lr.yaml --output-dir "$RUNS/lm_fidelity_lr" \
  --workers 2 --threads 1 ${METHODS:+--methods "$METHODS"} ${STOP_AFTER:+--stop-after "$STOP_AFTER"} -- --data-dir "$DATA"
for m in "$RUNS"/lm_fidelity_lr/seeds/*/seed*/metrics.json; do
  grep -q '"status": "running"' "$m" && continue
  dest="reports/lm_fidelity_ladder_runs/${m#"$RUNS"/lm_fidelity_lr/}"
  mkdir -p "$(dirname "$dest")" && cp "$m" "$dest"
done
.venv/bin/python experiments/lm_fidelity/report_ladder.py reports/lm_fidelity_ladder_runs \
  --plan experiments/lm_fidelity/lm_fidelity_ladder.yaml --probe experiments/lm_fidelity/lm_fidelity_lr.yaml \
  --notes reports/lm_fidelity_ladder.notes.md
