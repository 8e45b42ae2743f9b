#!/bin/bash
# Masked LM, BP vs iPC with the paper's settings, twice the data and epochs of reports/lm_single_seed_cpu.
cd /work/main
for algo in bp ipc; do
  out=runs/mlm_longer/mlm_${algo}
  [ -f $out/metrics.json ] && grep -q '"test_ppl"' $out/metrics.json && continue
  .venv/bin/accelerate launch --num_processes 1 --cpu scripts/train_lm.py --task mlm --algo $algo \
    --data-dir ../shared/data/lm1b data.shards=10-12 data.test=pool --output-dir $out --overwrite --seed 0 \
    data.train_size=4000 data.dev_size=500 data.max_length=32 train.epochs=4 train.patience=0 train.tracker=none \
    > $out.log 2>&1
done
