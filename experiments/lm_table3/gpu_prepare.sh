#!/usr/bin/env bash
# Here, before a device call: put what experiments/lm_table3/gpu_table3.sh needs and the GPU image lacks into .gpu/ (git-ignored,
# carried by the call): the wheels of `datasets` and `evaluate` (pure Python; their other dependencies are in the
# image) and the 1B Word files.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/lm1b}
mkdir -p .gpu/wheels
python3 -m pip download --quiet --no-deps -d .gpu/wheels datasets evaluate dill multiprocess
rm -rf .gpu/lm1b && cp -r "$DATA" .gpu/lm1b
cp reports/unigram_full_pool.json .gpu/ 2>/dev/null || true
du -sh .gpu
