#!/usr/bin/env bash
# Second GPU call: the first (run.sh) left PC at chance and iPC at ~21% with the paper's AlexNet gamma = 1.0.
# PC and iPC again at gamma 0.5 and 0.1 (the rest of the paper's grid), 5 epochs, no augmentation, all at once.
#   DATA=<cifar10-jpeg dir> OUT=<folder> bash experiments/vision/alexnet_cifar10_gpu_gamma.run.sh
set -u
DATA=${DATA:-../shared/data/cifar10-jpeg}
OUT=${OUT:-runs/alexnet_cifar10_gpu}
LIMIT=${LIMIT:-240}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-.}:.
run() {  # name algo gamma
  timeout "$LIMIT" python scripts/train_vision.py --model alexnet --dataset cifar10 --algo "$2" --data-dir "$DATA" \
    --output-dir "/tmp/alexnet/$1" --overwrite --threads 2 train.epochs=5 train.patience=0 data.augment=false seed=0 \
    pc.inference_lr="$3" > "/tmp/alexnet_$1.log" 2>&1
  echo "exit $?" >> "/tmp/alexnet_$1.log"
  cp "/tmp/alexnet/$1/metrics.json" "$OUT/$1.json" 2>/dev/null
}
run ipc_g05 ipc 0.5 & run ipc_g01 ipc 0.1 & run pc_g05 pc 0.5 & run pc_g01 pc 0.1 &
wait
for f in /tmp/alexnet_*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v 'it/s\|s/it' | tail -4; done > "$OUT/logs_gamma.txt"
cat "$OUT/logs_gamma.txt"
