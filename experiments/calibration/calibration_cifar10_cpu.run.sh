#!/bin/bash
# Calibration under shift (Fig. 3 left) at CPU scale, on the CIFAR-10 CNN runs of experiments/vision/vision_cnn_cpu.run.sh
# (Table 1's CNN, NOT the paper's AlexNet; 5000 training images, 2 epochs: SCALED DOWN), BP vs iPC, seeds 0 and 1:
# AdaECE (15 equal-mass bins) on 1000 random CIFAR-10 (JPEG q75) test images, clean and under six corruptions at
# intensities 1-5. One thread.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
C=runs/vision/cnn
.venv/bin/python -m pclm.cli.report calibration --runs BP=$C/cifar10_bp_seed0,$C/cifar10_bp_seed1 \
  --runs iPC=$C/cifar10_ipc_seed0,$C/cifar10_ipc_seed1 --dataset cifar10 --data-dir ../shared/data/cifar10-jpeg \
  --test-size 1000 --seed 0 --output reports/calibration_cifar10_cpu > runs/vision/calibration_cifar10_cpu.log 2>&1
echo "calibration rc=$?"
python3 - <<'PY'
import json, re
from pathlib import Path
d = json.loads(Path("reports/calibration_cifar10_cpu.json").read_text())
s = d["summary"]
methods = list(s)
lines = ["Median AdaECE over corruptions x seeds (intensity 0 = clean: over seeds); mean accuracy over the same "
         f"evaluations; {d['n_images']} test images, {d['n_bins']} equal-mass bins:", "",
         "| intensity | " + " | ".join(f"{m} median AdaECE" for m in methods) + " | lower | "
         + " | ".join(f"{m} mean accuracy" for m in methods) + " |", "|---" * (2 * len(methods) + 2) + "|"]
for lvl in ["0", "1", "2", "3", "4", "5"]:
    med = {m: s[m][lvl]["adaece_median"] for m in methods}
    lines.append(f"| {lvl} | " + " | ".join(f"{med[m]:.4f}" for m in methods) + f" | {min(med, key=med.get)} | "
                 + " | ".join(f"{100 * s[m][lvl]['accuracy_mean']:.2f}%" for m in methods) + " |")
lines += ["", "Clean AdaECE per seed:", ""]
for m, runs in d["methods"].items():
    lines.append(f"- {m}: " + ", ".join(f"{r} {v['clean']['adaece']:.4f} (accuracy {100 * v['clean']['accuracy']:.2f}%)"
                                        for r, v in runs.items()))
md = Path("reports/calibration_cifar10_cpu.md")
block = "<!-- generated -->\n" + "\n".join(lines) + "\n<!-- /generated -->"
old = md.read_text() if md.exists() else ""
md.write_text(re.sub("<!-- generated -->.*?<!-- /generated -->", lambda _: block, old, flags=re.S)
              if "<!-- generated -->" in old else block + "\n")
print("\n".join(lines))
PY
