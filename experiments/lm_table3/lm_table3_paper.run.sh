#!/usr/bin/env bash
# Table 3 under the paper's protocol (experiments/lm_table3/lm_table3_paper.yaml), two 1-thread runs side by side,
# in the order issue 26 asks: conditional BP and iPC seeds first, then the conditional control and paper point, the
# masked LM, then PC; then the report (both convergence rules, both perplexity counts) and every finished seed on the
# release's official 100-sentence sample. Resumable: re-running skips finished runs and resumes killed ones from their
# last checkpoint. Settings (environment): DATA (../shared/data/lm1b), RUNS (runs), WORKERS (2), LAUNCHER (accelerate
# launch; "accelerate launch --mixed_precision bf16" for bf16 autocast, only on a CPU with bf16
# instructions or a GPU: reports/lm_fidelity_ladder.md), STAGES (a subset of: clm rest mlm pc).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/lm1b}
RUNS=${RUNS:-runs}
WORKERS=${WORKERS:-2}
LAUNCHER=${LAUNCHER:-.venv/bin/accelerate launch}
PLAN=experiments/lm_table3/lm_table3_paper.yaml
declare -A STAGE=([clm]=clm_bp,clm_ipc [rest]=clm_control,clm_ipc_paper [mlm]=mlm_bp,mlm_ipc,mlm_control
                  [pc]=clm_pc,clm_pc_tuned,mlm_pc)
.venv/bin/python -m pclm.cli.unigram_baseline --data-dir "$DATA" data.train_size=100000 data.max_length=32 \
  data.count_eos=false --json reports/unigram_table3_paper.json
for s in ${STAGES:-clm rest mlm pc}; do
  .venv/bin/python scripts/run_plan.py "$PLAN" --output-dir "$RUNS/lm_table3_paper" --workers "$WORKERS" --threads 1 \
    --launcher "$LAUNCHER" --methods "${STAGE[$s]}" -- --data-dir "$DATA"
done
.venv/bin/python scripts/report_plan.py "$RUNS/lm_table3_paper" --name lm_table3_paper --paper-rule \
  --unigram reports/unigram_table3_paper.json --notes reports/lm_table3_paper.notes.md --paper-table reports/paper_table3.json \
  --compare clm_ipc/clm_bp --compare clm_ipc/clm_control --compare mlm_ipc/mlm_bp --compare mlm_ipc/mlm_control
.venv/bin/python -m pclm.cli.report_transfer "$RUNS/lm_table3_paper" "$DATA/samples/heldout-00000.sample100.ordered.txt" \
  --name lm_table3_paper_transfer --max-length 32 --mask-seeds 0-19
# and on 6,075 pool sentences no split uses (the last of seed 0's pool order; reports/lm_fidelity_ladder.notes.md)
.venv/bin/python -c "import sys, numpy as np; from pclm.data.lm1b import load_lm1b; d = load_lm1b(sys.argv[1], seed=0); o = np.random.default_rng(0).permutation(len(d['train']) + 10000); t = np.sort(o[10000:]); open(sys.argv[2], 'w').write('\n'.join(d['train'].select(np.searchsorted(t, np.sort(o[-6075:])))['text']) + '\n')" "$DATA" "$RUNS/pool_unused_6075.txt"
.venv/bin/python -m pclm.cli.report_transfer "$RUNS/lm_table3_paper" "$RUNS/pool_unused_6075.txt" --name lm_table3_paper_pool_transfer --max-length 32 --mask-seeds 0-1
