#!/bin/bash
# Table 1 CNN rows (SPEC.md section 5) at CPU scale: Table 1's CNN (conv 64, 128, 64 + FC 128 + FC 10, relu) on
# CIFAR-10 (JPEG q75) and Fashion-MNIST, BP / PC / iPC with the committed configs
# (configs/vision/cnn_<dataset>_<algo>.yaml: AdamW alpha=5e-5, wd=1e-4, batch 64, T=8, gamma=0.5), seeds 0-1,
# SCALED DOWN: 5000 training images (drawn with split_seed 0 from what the dev split leaves), 1000 dev images held out
# of the official training split (best epoch picked on dev), the FULL official test set (10000), 2 epochs for every
# method (the configs say 20 epochs, all training images, 5000 dev).
# One training process at a time, one thread (the 2-core machine is shared). Resumable: a run whose metrics.json
# holds a final status is skipped, one with a checkpoint is resumed.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/vision/cnn
mkdir -p $OUT
. experiments/vision/vision_run.sh  # run <folder> <train_vision args...>: one resumable training
for ds in cifar10 fashion-mnist; do
  for seed in 0 1; do
    for algo in bp pc ipc; do
      run $OUT/${ds}_${algo}_seed$seed --config configs/vision/cnn_${ds}_${algo}.yaml --seed $seed \
        data.train_size=5000 data.dev_size=1000 train.epochs=2 train.tracker=none
    done
  done
done
cells=()
for ds in cifar10 fashion-mnist; do
  row="CNN on CIFAR-10 (JPEG q75)"; [ $ds = fashion-mnist ] && row="CNN on FashionMNIST"
  for algo in bp pc ipc; do
    col=$(echo $algo | sed 's/ipc/iPC/;s/^pc$/PC/;s/bp/BP/')
    cells+=(--cell "$row/$col=$OUT/${ds}_${algo}_seed0,$OUT/${ds}_${algo}_seed1")
  done
done
.venv/bin/python -m pclm.cli.report vision --output reports/vision_cnn_cpu "${cells[@]}" \
  --paper "CNN on CIFAR-10 (JPEG q75)/BP=69.34 ± 0.54" --paper "CNN on CIFAR-10 (JPEG q75)/PC=70.84 ± 0.64" \
  --paper "CNN on CIFAR-10 (JPEG q75)/iPC=72.54 ± 0.93" \
  --paper "CNN on FashionMNIST/BP=— (not in Table 1)" --paper "CNN on FashionMNIST/PC=—" \
  --paper "CNN on FashionMNIST/iPC=—"
