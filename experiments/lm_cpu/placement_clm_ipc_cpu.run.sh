#!/bin/bash
# Which value-node placement trains best: conditional LM, iPC, T=4, x_lr=0.5, lr 0.0008, same split/epochs as issue3.
cd /work/main
while pgrep -f runs/issue3/run.sh > /dev/null; do sleep 20; done
for vn in out+scores out scores none; do
  out=runs/placement/clm_ipc_${vn/+/_}
  [ -f $out/metrics.json ] && grep -q '"test_ppl"' $out/metrics.json && continue
  .venv/bin/accelerate launch --num_processes 1 --cpu scripts/train_lm.py --task clm --algo ipc \
    --data-dir ../shared/data/lm1b data.shards=10-12 data.test=pool --output-dir $out --overwrite --seed 0 \
    data.train_size=2000 data.dev_size=500 data.max_length=32 train.epochs=2 train.patience=0 train.tracker=none \
    train.lr=0.0008 pc.value_nodes=$vn > $out.log 2>&1
done
