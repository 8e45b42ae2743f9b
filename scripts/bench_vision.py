#!/usr/bin/env python
"""The pcx comparison run: MLP 784-128-128-128-10 on MNIST with iPC, T=8, batch 128, 5 epochs, through the same
`train_vision` as every vision run. Prints seconds per epoch and test accuracy after each epoch and writes
reports/bench_vision.json (with the command). Reference on this CPU: pcx ~4.1 s/epoch, 97.6% after 5 epochs.

    python scripts/bench_vision.py --threads 2                  # the comparison run (train.fused, both cores)
    python scripts/bench_vision.py --modes eager fused          # autograd, then closed form, in this process
    python scripts/bench_vision.py --epochs 1 --train-size 10000  # a quick check

gamma defaults to 0.5 (SPEC.md: the paper's usual best) and alpha to 1e-4 (AdamW). Every mode uses the same seed and
data order; epoch 1 of the compiled mode includes its compilation (two batch shapes). The pcx side of the comparison
is measured on the same machine by scripts/bench_pcx.py (JAX, in its own environment).

The test split is the dev set here (data.dev_size=0), so "dev accuracy" after each epoch IS test accuracy, as pcx
reports it; nothing is selected on it that the report depends on (the last epoch's number is the one to quote).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("eager", "compiled", "fused")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--algo", default="ipc")
    p.add_argument("--inference-steps", type=int, default=8, help="T")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4, help="alpha (AdamW)")
    p.add_argument("--inference-lr", type=float, default=0.5, help="gamma (0.5: the paper's usual best)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=4, help="weight layers (4: 784-128-128-128-10)")
    p.add_argument("--act", default="gelu")
    p.add_argument("--train-size", type=int, help="train on a subset (default: all 60000)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--threads", default="1", help="intra-op threads (default 1: the matrices are tiny, and on the "
                   "shared 2-core machine 2 threads ran 20x slower while another job was running)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=["fused"],
                   help="execution modes to run one after the other in this process, with the same seed and data "
                   "order: eager (autograd), compiled (train.compile=true), fused (train.fused=true, the MLP's "
                   "mini-batch in closed form; the default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_vision.json")
    args = p.parse_args(argv)

    from pclm.config import load_vision_config
    from pclm.cpu import configure_cpu
    from pclm.errors import UsageError
    from pclm.training.vision import train_vision

    overrides = [f"data.dataset={args.dataset}", f"data.data_dir={args.data_dir}", "data.dev_size=0",
                 "data.normalize=true", "model.name=mlp", f"model.width={args.width}", f"model.depth={args.depth}",
                 f"model.act={args.act}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
                 "train.optimizer=adamw", f"train.lr={args.lr}", "train.weight_decay=0.0", "train.patience=0",
                 "train.log_every=100", f"pc.inference_steps={args.inference_steps}",
                 f"pc.inference_lr={args.inference_lr}", f"algo={args.algo}", f"seed={args.seed}"]
    if args.train_size:
        overrides.append(f"data.train_size={args.train_size}")
    modes = list(dict.fromkeys(args.modes))
    results = {}
    try:
        cfg = load_vision_config(None, overrides)
        cpu = configure_cpu(args.threads if args.threads == "auto" else int(args.threads))
        for mode in modes:  # the same seed, data order and config; only the way gradients are computed differs
            run_cfg = load_vision_config(None, overrides + [f"train.compile={mode == 'compiled'}",
                                                             f"train.fused={mode == 'fused'}"])
            with tempfile.TemporaryDirectory() as tmp:
                print(f"--- {mode}", flush=True)
                results[mode] = train_vision(run_cfg, Path(tmp) / "run", cpu_info=cpu)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = {"command": "python scripts/bench_vision.py " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv)),
              "config": cfg.to_dict(), "modes": {},  # config: the settings every mode shares; the mode's keys per mode
              "reference": {"pcx_seconds_per_epoch": 4.1, "pcx_accuracy_5_epochs": 0.976}}
    for mode, metrics in results.items():
        epochs = [{"epoch": h["epoch"], "seconds": s, "test_accuracy": h["dev_accuracy"], "test_loss": h["dev_loss"]}
                  for h, s in zip(metrics["history"], metrics["seconds_per_epoch"])]
        report["modes"][mode] = {"train.compile": mode == "compiled", "train.fused": mode == "fused",
                                 "status": metrics["status"], "epochs": epochs,
                                 "mean_seconds_per_epoch": metrics["mean_seconds_per_epoch"]}
        report["data_sizes"], report["machine"] = metrics["data_sizes"], metrics["machine"]
    first = modes[0]
    print("epoch  " + "  ".join(f"{m + ' s':>11}  {m + ' acc':>12}" for m in results)
          + "".join(f"  {first + '/' + m:>16}" for m in modes[1:]))
    for i in range(max(len(r["epochs"]) for r in report["modes"].values())):
        cells = [report["modes"][m]["epochs"][i] for m in results]
        line = f"{i + 1:5d}  " + "  ".join(f"{e['seconds']:11.2f}  {100 * e['test_accuracy']:11.2f}%" for e in cells)
        line += "".join(f"  {cells[0]['seconds'] / c['seconds']:16.2f}" for c in cells[1:])
        print(line)
    for mode in results:
        e = report["modes"][mode]["epochs"]
        steady = [x["seconds"] for x in e[1:]] or [e[0]["seconds"]]  # epoch 1 includes compilation
        report["modes"][mode]["mean_seconds_per_epoch_after_first"] = round(sum(steady) / len(steady), 2)
        print(f"{mode}: mean {report['modes'][mode]['mean_seconds_per_epoch']} s/epoch, "
              f"{report['modes'][mode]['mean_seconds_per_epoch_after_first']} s/epoch from epoch 2 on, "
              f"test accuracy {100 * e[-1]['test_accuracy']:.2f}% after {len(e)} epochs "
              "(pcx reference ~4.1 s/epoch, 97.6% after 5 epochs)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
