#!/usr/bin/env bash
# AlexNet on CIFAR-10 (JPEG q75 parquet) on ONE GPU, all runs of a call at once (each is launch-bound eager PyTorch,
# so they share the card well). Epochs are cut to fit a 15-minute device lease.
#   DATA=<dir with train.parquet/test.parquet> OUT=<folder> bash experiments/vision/alexnet_cifar10_gpu.run.sh
# Call 1: BP / PC / iPC, with and without augmentation, and iPC compiled. It left PC at chance and iPC at ~21% with
# the paper's AlexNet gamma = 1.0, so call 2 (CALL=gamma LIMIT=240) ran PC and iPC again at gamma 0.5 and 0.1 (the
# rest of the paper's grid), 5 epochs, no augmentation.
set -u
DATA=${DATA:-../shared/data/cifar10-jpeg}
OUT=${OUT:-runs/alexnet_cifar10_gpu}
LIMIT=${LIMIT:-300}  # seconds per run, a safety net: a run stopped by it keeps its per-epoch metrics
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-.}:.
run() {  # name algo epochs augment [more overrides]
  timeout "$LIMIT" python scripts/train_vision.py --model alexnet --dataset cifar10 --algo "$2" --data-dir "$DATA" \
    --output-dir "/tmp/alexnet/$1" --overwrite --threads 2 train.epochs="$3" train.patience=0 data.augment="$4" seed=0 \
    "${@:5}" \
    > "/tmp/alexnet_$1.log" 2>&1
  echo "exit $?" >> "/tmp/alexnet_$1.log"
  cp "/tmp/alexnet/$1/metrics.json" "$OUT/$1.json" 2>/dev/null
}
if [ "${CALL:-1}" = gamma ]; then
  for g in 0.5 0.1; do for algo in ipc pc; do run "${algo}_g${g/./}" $algo 5 false pc.inference_lr=$g & done; done
  LOGS=logs_gamma.txt TAIL=4
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
  python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
  E=${EPOCHS:-5}
  run bp bp "$E" false & run bp_aug bp "$E" true & run ipc ipc "$E" false & run ipc_aug ipc "$E" true &
  run pc pc "$E" false & run ipc_compiled ipc "$E" false train.backend=compiled &
  LOGS=logs.txt TAIL=15
fi
wait
for f in /tmp/alexnet_*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v 'it/s\|s/it' | tail -$TAIL; done > "$OUT/$LOGS"
cat "$OUT/$LOGS"
