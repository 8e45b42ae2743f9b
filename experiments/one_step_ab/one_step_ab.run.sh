#!/usr/bin/env bash
# A/B of the one-step change (issue 17): bench_parallel's paths before it (OLD, default 9afc7a6) and at NEW (default
# HEAD), in worktrees, alternating old/new for ROUNDS rounds; the closed-form and the autograd grid on
# the overhead-bound width 64, where a slower schedule would show first. Run on an otherwise idle machine.
# Prints each cell's median-of-rounds new/old ratio; noise = the spread of one side's rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=${OLD:-9afc7a6}; NEW=${NEW:-HEAD}; ROUNDS=${ROUNDS:-3}; OUT=${OUT:-$(mktemp -d)}
for side in old new; do
  rev=$([ $side = old ] && echo "$OLD" || echo "$NEW")
  git worktree add -f --detach "$OUT/$side" "$rev" >/dev/null 2>&1
done
for round in $(seq "$ROUNDS"); do
  for side in old new; do
    for mode in fused autograd; do
      bench="$OUT/$side/benchmarks/bench_parallel.py"
      [ -f "$bench" ] || bench="$OUT/$side/scripts/bench_parallel.py"  # its place before issue 27
      flag=
      if [ $mode = fused ]; then  # --fused is --backend closed_form since issue 27
        grep -q -- '"--backend"' "$bench" && flag="--backend closed_form" || flag=--fused
      fi
      PYTHONPATH="$OUT/$side" .venv/bin/python "$bench" $flag --depths 2 8 32 --widths 64 \
        --batches 1 128 --repeats 15 --json "$OUT/${mode}_${side}_$round.json" --png "$OUT/unused.png" >/dev/null
    done
  done
done
.venv/bin/python - "$OUT" "$ROUNDS" <<'PY'
import json, statistics as st, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for mode in ("fused", "autograd"):
    cells = {}
    for side in ("old", "new"):
        for r in range(1, rounds + 1):
            for row in json.load(open(f"{out}/{mode}_{side}_{r}.json"))["rows"]:
                for path, t in row["median_s"].items():
                    cells.setdefault((row["depth"], row["width"], row["batch"], path), {}).setdefault(side, []).append(t)
    ratios = []
    for key, v in sorted(cells.items()):
        ratio = st.median(v["new"]) / st.median(v["old"])
        ratios.append(ratio)
        spread = max(max(v[s]) / min(v[s]) for s in v)
        print(f"{mode:8s} depth {key[0]:2d} width {key[1]} batch {key[2]:3d} {key[3]:8s} new/old {ratio:.2f}  "
              f"(largest round spread {spread:.2f})")
    print(f"{mode}: median new/old over {len(ratios)} cells {st.median(ratios):.3f}, range {min(ratios):.2f}-{max(ratios):.2f}")
PY
git worktree remove --force "$OUT/old"; git worktree remove --force "$OUT/new"
