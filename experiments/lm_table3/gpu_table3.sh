#!/usr/bin/env bash
# Table 3 at the full local pool on one lent GPU, within one 10-minute device call: every run of the plan side by
# side on the one device (WORKERS processes), then the same reports as on CPU (Table 3; each seed on the official
# 100-sentence sample beside its test perplexity), written under $OUT.
#
#   bash experiments/lm_table3/gpu_prepare.sh                  # here, once: wheels the GPU image lacks + the data, into .gpu/
#   device run, carry [".gpu"]:  bash experiments/lm_table3/gpu_table3.sh
#
# Settings (environment): PLAN (default experiments/lm_table3/lm_table3_full.yaml), WORKERS (12), STOP_AFTER (seconds
# after which no new run starts; default 420), OUT (default ./gpu_out), DATA (default .gpu/lm1b), METHODS (subset),
# EXTRA (overrides that win over the plan's, e.g. "data.train_size=null" for the whole pool), REPORT_ARGS (report_plan's,
# e.g. "--paper-rule"). Reports: $OUT/<plan stem>_gpu{,_transfer}.{md,json}.
# Resumable: runs already final in $OUT/runs are skipped, so a second call continues the first.
set -euo pipefail
cd "$(dirname "$0")/../.."
PLAN=${PLAN:-experiments/lm_table3/lm_table3_full.yaml}
WORKERS=${WORKERS:-12}
STOP_AFTER=${STOP_AFTER:-420}
OUT=${OUT:-./gpu_out}
DATA=${DATA:-.gpu/lm1b}
PY=${PYTHON:-python3}
if [ -d .gpu/wheels ] && ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install --quiet --no-index --no-deps .gpu/wheels/*.whl
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
$PY scripts/run_plan.py "$PLAN" --output-dir "$OUT/runs" --workers "$WORKERS" --threads 1 --launcher "$PY" \
  --stop-after "$STOP_AFTER" ${METHODS:+--methods "$METHODS"} -- --data-dir "$DATA" ${EXTRA:-} 2>&1 | grep -E '^\[plan\]|^error' || true
NAME=$(basename "$PLAN" .yaml)_gpu
$PY scripts/report_plan.py "$OUT/runs" --name "$NAME" --out-dir "$OUT" ${UNIGRAM:+--unigram "$UNIGRAM"} ${REPORT_ARGS:-}
# every finished seed on the release's official 100-sentence sample (not in the pool), beside its test perplexity
SAMPLE=$(ls "$DATA"/samples/*.sample100.ordered.txt 2>/dev/null | head -1 || true)
if [ -n "$SAMPLE" ]; then
  $PY -m pclm.cli.report_transfer "$OUT/runs" "$SAMPLE" --name "${NAME}_transfer" --out-dir "$OUT" \
    --max-length 32 --mask-seeds 0-19 2>&1 | grep -E '^wrote|^error'
fi
