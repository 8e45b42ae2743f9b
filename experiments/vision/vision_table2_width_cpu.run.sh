#!/bin/bash
# Table 2 (width) at CPU scale (SPEC.md section 5): WidthCNN (conv 32C, 16C, 8C, each with 2x2 max-pool, then FC 128C,
# relu) on CIFAR-10 (JPEG q75), C in {1, 2, 4, 8} (the paper also has 3, 5, 6, 7, 10, 15, 20), BP vs iPC with the
# committed configs (configs/vision/width_cnn_cifar10_{bp,ipc}.yaml: AdamW alpha=5e-5, wd=1e-4, batch 64, T=8,
# gamma=0.5), seeds 0, 1, 2, SCALED DOWN: $TRAIN_SIZE (below) training images, 1000 dev (best epoch), 5000 random test
# images (of the official 10000), $EPOCHS epochs (the configs say 20 epochs, all training images, 5000 dev).
# One stream of runs per seed, side by side (seed 0 ran first, alone, in an earlier session), one thread per run.
# Resumable: a run whose metrics.json holds a final status is skipped.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
TRAIN_SIZE=2000
EPOCHS=2
OUT=runs/vision/width
mkdir -p $OUT
. experiments/vision/vision_run.sh  # run <folder> <train_vision args...>: one resumable training
stream() {  # every width and algorithm at seed $1, one run after the other
  for C in 1 2 4 8; do
    for algo in bp ipc; do
      run $OUT/C${C}_${algo}_seed$1 --config configs/vision/width_cnn_cifar10_${algo}.yaml --seed $1 model.C=$C \
        data.train_size=$TRAIN_SIZE data.dev_size=1000 data.test_size=5000 train.epochs=$EPOCHS train.tracker=none
    done
  done
}
for seed in 0 1 2; do stream $seed & done
wait
declare -A PAPER=([bp1]=67.92 [bp2]=71.23 [bp4]=72.64 [bp8]=74.51 [ipc1]=70.61 [ipc2]=74.12 [ipc4]=75.88 [ipc8]=77.41)
args=()
for algo in bp ipc; do
  row=$(echo $algo | sed 's/ipc/iPC/;s/bp/BP/')
  for C in 1 2 4 8; do
    args+=(--cell "$row/C$C=$OUT/C${C}_${algo}_seed0,$OUT/C${C}_${algo}_seed1,$OUT/C${C}_${algo}_seed2"
           --paper "$row/C$C=${PAPER[$algo$C]}")
  done
done
.venv/bin/python -m pclm.cli.report vision --output reports/vision_table2_width_cpu "${args[@]}"
