#!/usr/bin/env python
"""Seconds per epoch and test accuracy of one vision run, trained by each gradient backend (train.backend) in turn in
this process, with the same seed, data order and config; writes reports/bench_vision.json (with the command). The run
is configs/vision/bench_pcx.yaml (--config), the pcx comparison's: MLP 784-128-128-128-10 on MNIST with iPC, T=8,
batch 128, 5 epochs.

    python benchmarks/bench_vision.py                                   # train.backend=closed_form on both cores
    python benchmarks/bench_vision.py --backends autograd closed_form train.epochs=3   # two backends, one process
    python benchmarks/bench_vision.py --rounds 3 train.epochs=1 data.train_size=10000  # a quick check, 3 rounds

Positional `section.key=value` arguments override the config. Epoch 1 of the compiled backend includes its compilation
(two batch shapes). The test split is the dev set here (data.dev_size=0), so "dev accuracy" after each epoch IS test
accuracy, as pcx reports it; nothing is selected on it that the report depends on (the last epoch's number is the one
to quote). pcx itself ran side by side through benchmarks/bench_pcx.py, retired (docs/lab_notes.md, "Retired drivers").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.common when run as a file

from benchmarks.common import command_line, write_json  # noqa: E402
from pclm.config import VISION_BACKENDS  # noqa: E402
from pclm.errors import ArgumentParser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "vision" / "bench_pcx.yaml")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument(
        "--threads",
        default="2",
        help="intra-op threads (default 2: this machine's cores, as pcx used them; run nothing else meanwhile)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        choices=VISION_BACKENDS,
        default=["closed_form"],
        help="train.backend of each run, one after the other in this process (default closed_form)",
    )
    p.add_argument("--rounds", type=int, default=1, help="run every backend this many times, alternating")
    p.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_vision.json")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides, e.g. train.epochs=1")
    args = p.parse_intermixed_args(argv)

    from pclm.config import load_config
    from pclm.cpu import configure_cpu
    from pclm.errors import UsageError
    from pclm.training.vision import train_vision

    overrides = [f"data.data_dir={args.data_dir}", *args.overrides]
    rounds = []
    try:
        cfg = load_config(args.config, overrides, tasks=("vision",))
        cpu = configure_cpu(args.threads)  # "auto" or a positive integer; anything else is a UsageError
        for number in range(1, args.rounds + 1):  # rounds alternate the backends: this VM's speed drifts
            runs = {}
            for backend in dict.fromkeys(args.backends):
                run_cfg = load_config(args.config, [*overrides, f"train.backend={backend}"], tasks=("vision",))
                print(f"--- round {number}: {backend}", flush=True)
                with tempfile.TemporaryDirectory() as tmp:
                    run = runs[backend] = epochs_of(train_vision(run_cfg, Path(tmp) / "run", cpu_info=cpu))
                seconds = " ".join(f"{e['seconds']:.2f}" for e in run["epochs"])
                print(
                    f"round {number} {backend}: epochs {seconds} s (steady {run['steady_seconds_per_epoch']:.2f}), "
                    f"test accuracy {100 * run['epochs'][-1]['test_accuracy']:.2f}%",
                    flush=True,
                )
            rounds.append({"round": number, "runs": runs})
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = {}
    for backend in rounds[0]["runs"]:
        steady = [r["runs"][backend]["steady_seconds_per_epoch"] for r in rounds]
        final = [r["runs"][backend]["epochs"][-1]["test_accuracy"] for r in rounds]
        summary[backend] = {
            "steady_seconds_per_epoch": steady,
            "median": statistics.median(steady),
            "final_test_accuracy": final,
        }
        print(
            f"{backend}: steady s/epoch per round {steady} (median {statistics.median(steady):.2f}), "
            f"final test accuracy {[round(100 * a, 2) for a in final]}%"
        )
    report = {
        "command": command_line("bench_vision.py", argv),
        "config": cfg.to_dict(),
        "threads": cpu["threads"],
        "rounds": rounds,
        "note": "seconds: the training loop of each epoch (evaluation apart); epoch 1 includes compilation "
        "(train.backend=compiled); 'steady' = mean over epochs 2..N. Backends run one after the other in each "
        "round, never at the same time.",
        "summary": summary,
    }
    write_json(args.output, report)
    print(f"wrote {args.output}")
    return 0


def epochs_of(metrics: dict) -> dict:
    """A run's seconds and test accuracy per epoch (from `train_vision`'s metrics), and its steady s/epoch."""
    epochs = [
        {"epoch": h["epoch"], "seconds": s, "test_accuracy": h["dev_accuracy"], "test_loss": h["dev_loss"]}
        for h, s in zip(metrics["history"], metrics["seconds_per_epoch"])
    ]
    steady = [e["seconds"] for e in epochs[1:]] or [epochs[0]["seconds"]]
    return {
        "status": metrics["status"],
        "epochs": epochs,
        "steady_seconds_per_epoch": round(sum(steady) / len(steady), 3),
        "data_sizes": metrics["data_sizes"],
        "machine": metrics["machine"],
    }


if __name__ == "__main__":
    sys.exit(main())
