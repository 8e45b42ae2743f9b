#!/bin/bash
# Issue 4: the committed CPU-scale Table-3 reproduction. Resumable: re-run it and finished seeds are skipped.
# Scale (the same for every method and seed): 1B Word shards in ../shared, split seed 0, 2,000 training sentences,
# 500 dev, 3,000 test, 32 tokens, 2 epochs, batch 128, no early stopping. Paper hyperparameters from configs/.
# Seed 0 of every method and seeds 1-2 of CLM BP/iPC were first run by reports/lm_single_seed_cpu and
# an earlier 3-seed run (runs/seeds, same config) with this exact config; they are copied in rather than run again.
# Threads: seeds 0-2 ran with --threads auto (2); from seed 3 on every run uses one thread and two chains run side
# by side (a vision job held the other core, and 2-thread runs on a shared core ran up to 6x slower).
set -u
cd "$(dirname "$0")/../.."
R=runs/table3
COMMON="--data-dir ../shared/data/lm1b data.shards=10-12 data.test=pool data.train_size=2000 data.dev_size=500 data.max_length=32 train.epochs=2 train.patience=0 train.tracker=none"
T1="--threads 1"
mkdir -p $R $R/grid_clm_ipc_lr
for m in clm_bp clm_ipc clm_pc mlm_bp mlm_ipc mlm_pc; do
  [ -d runs/issue3/$m ] && [ ! -d $R/$m/seed0 ] && mkdir -p $R/$m && cp -r runs/issue3/$m $R/$m/seed0
done
for m in clm_bp clm_ipc; do for s in 1 2; do
  [ -d runs/seeds/$m/seed$s ] && [ ! -d $R/$m/seed$s ] && cp -r runs/seeds/$m/seed$s $R/$m/seed$s
done; done
# the grid's lr=0.0032 point is the paper setting's seed 0
[ -d "$R/grid_clm_ipc_lr/lr=0.0032" ] || cp -r $R/clm_ipc/seed0 "$R/grid_clm_ipc_lr/lr=0.0032"
# chain A: paper settings, seeds 0-4, seed-major so a partial run is balanced across methods
(
for s in 0 1 2 3 4; do
  for m in clm_bp clm_ipc mlm_bp mlm_ipc mlm_pc clm_pc; do
    python scripts/run_seeds.py --task ${m%_*} --algo ${m#*_} --seeds $s --output-dir $R/$m -- $COMMON $T1 >> $R/$m.log 2>&1
  done
done
) &
# chain B: the paper's CLM iPC lr (0.0032) trains worse than 0.0008 at this scale (2,000 sentences, 2 epochs; not
# advice for more data, and BP's lr is not re-tuned): pick the lr on dev (seed 0),
# then seeds 0-4 at that lr (seed 0 = the grid point, copied)
(
python scripts/sweep.py configs/grids/clm_ipc_lr_cpu.yaml --output-dir $R/grid_clm_ipc_lr -- $COMMON $T1 > $R/grid_clm_ipc_lr.log 2>&1
LR=$(python -c "import json; print(json.load(open('$R/grid_clm_ipc_lr/results.json'))['points'][0]['point']['train.lr'])")
mkdir -p $R/clm_ipc_tuned
[ -d $R/clm_ipc_tuned/seed0 ] || cp -r "$R/grid_clm_ipc_lr/lr=$LR" $R/clm_ipc_tuned/seed0
python scripts/run_seeds.py --task clm --algo ipc --seeds 0-4 --output-dir $R/clm_ipc_tuned -- $COMMON $T1 train.lr=$LR >> $R/clm_ipc_tuned.log 2>&1
) &
wait
