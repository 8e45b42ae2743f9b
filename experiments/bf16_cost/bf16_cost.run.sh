#!/usr/bin/env bash
# fp32 vs bf16 autocast on short runs of each algorithm (experiments/bf16_cost/bf16_cost.yaml); then
# python scripts/report_plan.py runs/bf16_cost/fp32 --name bf16_cost_fp32 ... (see reports/bf16_cost.md)
# These runs predate heldout 00000 and the 47-shard pool in ../shared/data/lm1b: "data.shards=10-12 data.test=pool" selects the pool
# they used (heldout 10-12, test drawn from it), so the commands reproduce them with today's data folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/lm1b}
A=.venv/bin/accelerate
.venv/bin/python scripts/run_plan.py experiments/bf16_cost/bf16_cost.yaml --output-dir runs/bf16_cost/fp32 --threads 1 \
  --launcher "$A launch" -- --data-dir "$DATA" data.shards=10-12 data.test=pool
.venv/bin/python scripts/run_plan.py experiments/bf16_cost/bf16_cost.yaml --output-dir runs/bf16_cost/bf16 --threads 1 \
  --launcher "$A launch --mixed_precision bf16" -- --data-dir "$DATA" data.shards=10-12 data.test=pool
# the table of reports/bf16_cost.md (the runs' own metrics.json, nothing else)
.venv/bin/python - "$(pwd)/runs/bf16_cost" <<'PY'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
rows = ["| algorithm | precision | dev ppl per epoch | best dev | test ppl (best model) | train seconds (shared machine) |",
        "|---|---|---|---|---|---|"]
for algo in ("bp", "ipc", "pc"):
    for prec in ("fp32", "bf16"):
        m = json.loads((root / prec / "seeds" / f"clm_{algo}" / "seed0" / "metrics.json").read_text())
        curve = " → ".join(f"{h['dev_ppl']:.1f}" for h in m["history"])
        rows.append(f"| {algo} | {prec} ({m['mixed_precision']}) | {curve} | {m['best_dev_ppl']:.1f} | {m['test_ppl']:.1f} | {m['train_seconds']:.0f} |")
head = ["# bf16 autocast vs fp32: dev-perplexity cost on short runs", "",
        "Command: `bash experiments/bf16_cost/bf16_cost.run.sh` (experiments/bf16_cost/bf16_cost.yaml). Conditional LM at each algorithm's",
        "shipped config, 4,000 training sentences of the full local pool (dev 1,000, test 3,000, at most 32 tokens),",
        "2 epochs, seed 0, one seed only. bf16 = `accelerate launch --mixed_precision bf16` (autocast; value nodes and their",
        "SGD stay float32). Train seconds were measured while other jobs shared the 2 cores: not a speed comparison",
        "(reports/bench_step_idle.txt has that).", ""]
Path("reports/bf16_cost.md").write_text("\n".join(head + rows) + "\n")
print("\n".join(rows))
PY
