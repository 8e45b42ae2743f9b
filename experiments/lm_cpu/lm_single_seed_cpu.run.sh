#!/bin/bash
# Issue-3 table: one seed each, same split and epochs for every method, CPU scale.
cd /work/main
for task in clm mlm; do for algo in bp ipc pc; do
  out=runs/issue3/${task}_${algo}
  [ -f $out/metrics.json ] && grep -q '"test_ppl"' $out/metrics.json && continue
  .venv/bin/accelerate launch --num_processes 1 --cpu scripts/train_lm.py --task $task --algo $algo \
    --data-dir ../shared/data/lm1b data.shards=10-12 data.test=pool --output-dir $out --overwrite --seed 0 \
    data.train_size=2000 data.dev_size=500 data.max_length=32 train.epochs=2 train.patience=0 train.tracker=none \
    > runs/issue3/${task}_${algo}.log 2>&1
done; done
