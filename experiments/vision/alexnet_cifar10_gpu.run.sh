#!/usr/bin/env bash
# AlexNet on CIFAR-10 (JPEG q75 parquet), BP / PC / iPC, with and without augmentation, on ONE GPU, all runs at once
# (each is launch-bound eager PyTorch, so they share the card well). Epochs are cut to fit a 15-minute device lease.
#   DATA=<dir with train.parquet/test.parquet> OUT=<folder> bash experiments/vision/alexnet_cifar10_gpu.run.sh
set -u
DATA=${DATA:-../shared/data/cifar10-jpeg}
OUT=${OUT:-runs/alexnet_cifar10_gpu}
LIMIT=${LIMIT:-300}  # seconds per run, a safety net: a run stopped by it keeps its per-epoch metrics
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-.}:.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
run() {  # name algo epochs augment [more overrides]
  timeout "$LIMIT" python scripts/train_vision.py --model alexnet --dataset cifar10 --algo "$2" --data-dir "$DATA" \
    --output-dir "/tmp/alexnet/$1" --overwrite --threads 2 train.epochs="$3" train.patience=0 data.augment="$4" seed=0 \
    "${@:5}" \
    > "/tmp/alexnet_$1.log" 2>&1
  echo "exit $?" >> "/tmp/alexnet_$1.log"
  cp "/tmp/alexnet/$1/metrics.json" "$OUT/$1.json" 2>/dev/null
}
E=${EPOCHS:-5}
run bp bp "$E" false & run bp_aug bp "$E" true & run ipc ipc "$E" false & run ipc_aug ipc "$E" true &
run pc pc "$E" false & run ipc_compiled ipc "$E" false train.backend=compiled &
wait
for f in /tmp/alexnet_*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v 'it/s\|s/it' | tail -15; done > "$OUT/logs.txt"
cat "$OUT/logs.txt"
