#!/usr/bin/env python
"""Calibration under distribution shift of trained vision runs (Fig. 3 left): AdaECE and accuracy of every seed on
the clean test set and under six corruptions at intensities 1..5, written to <output>.json and <output>.png.

    pclm-report calibration --runs BP=runs/a/seed0,runs/a/seed1 --runs iPC=runs/b/seed0,runs/b/seed1 \\
        --dataset cifar10 --data-dir ../shared/data/cifar10-jpeg --output reports/calibration_cifar10_cpu

`--runs METHOD=DIR[,DIR...]` (repeatable) names a method and its run folders, one per seed, as written by
scripts/train_vision.py. `--test-size N` evaluates a random subset of N test images (drawn with `--seed`, which
also seeds the corruptions). The PNG is a boxplot: x = intensity (0 = clean), one box per method per intensity,
each box over the AdaECE values of every corruption x seed (intensity 0: one value per seed).
Bad input (a missing run folder, an unknown dataset, ...) exits with code 2 and one line, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

from pclm.errors import ArgumentParser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--runs",
        action="append",
        required=True,
        metavar="METHOD=DIR[,DIR...]",
        help="a method's run folders (one per seed), repeatable",
    )
    p.add_argument("--dataset", required=True, help="test set, a key of pclm.data.vision.VISION_DATASETS")
    p.add_argument("--data-dir", required=True, help="folder holding the data set's files")
    p.add_argument("--output", required=True, help="output stem: writes <output>.json and <output>.png")
    p.add_argument("--test-size", type=int, default=None, help="evaluate N random test images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test subset and of the corruptions")
    p.add_argument("--n-bins", type=int, default=15, help="equal-mass bins of AdaECE (default 15)")
    p.add_argument("--batch-size", type=int, default=512, help="prediction batch size")
    return p.parse_args(argv)


def parse_runs(items: list[str]) -> dict[str, list[Path]]:
    """["BP=a,b", "iPC=c"] -> {"BP": [a, b], "iPC": [c]}, every folder checked to exist."""
    from pclm.errors import UsageError

    runs: dict[str, list[Path]] = {}
    for item in items:
        method, sep, dirs = item.partition("=")
        paths = [Path(d) for d in dirs.split(",") if d]
        if not sep or not method or not paths:
            raise UsageError(f"--runs must be METHOD=DIR[,DIR...], got '{item}'")
        if method in runs:
            raise UsageError(f"--runs: method '{method}' given twice")
        for path in paths:
            if not path.is_dir():
                raise UsageError(f"run folder not found: {path}")
        runs[method] = paths
    return runs


def summarize(methods: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and intensity ("0" = clean): the AdaECE values pooled over corruptions x seeds (their count, mean,
    median, min, max) and the mean accuracy over the same evaluations."""
    out = {}
    for method, runs in methods.items():
        ece, acc = boxes(runs, "adaece"), boxes(runs, "accuracy")
        out[method] = {
            i: {
                "adaece_mean": statistics.fmean(v),
                "adaece_median": statistics.median(v),
                "adaece_min": min(v),
                "adaece_max": max(v),
                "accuracy_mean": statistics.fmean(acc[i]),
                "values": len(v),
            }
            for i, v in ece.items()
        }
    return out


def boxes(runs: dict[str, dict], key: str = "adaece") -> dict[str, list[float]]:
    """One method's results per run -> {intensity: values of `key`}, "0" holding the clean value of every seed and
    "1".."5" the values of every corruption x seed."""
    pooled: dict[str, list[float]] = {"0": [r["clean"][key] for r in runs.values()]}
    for r in runs.values():
        for levels in r["corrupted"].values():
            for i, v in levels.items():
                pooled.setdefault(i, []).append(v[key])
    return pooled


def plot(methods: dict[str, dict[str, dict]], path: Path, title: str) -> None:
    """Fig. 3 left: AdaECE boxes per intensity, one per method side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = {m: boxes(runs) for m, runs in methods.items()}
    intensities = sorted({i for p in pooled.values() for i in p}, key=int)
    width = 0.8 / len(pooled)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (method, p) in enumerate(pooled.items()):
        pos = [int(i) - 0.4 + width * (k + 0.5) for i in intensities]
        bp = ax.boxplot(
            [p.get(i, []) for i in intensities],
            positions=pos,
            widths=width * 0.9,
            patch_artist=True,
            manage_ticks=False,
            medianprops={"color": "black"},
        )
        for box in bp["boxes"]:
            box.set_facecolor(colors[k % len(colors)])
            box.set_alpha(0.7)
        ax.plot([], [], "s", color=colors[k % len(colors)], label=method)
    ax.set_xticks([int(i) for i in intensities])
    ax.set_xticklabels(["clean" if i == "0" else i for i in intensities])
    ax.set_xlabel("shift intensity")
    ax.set_ylabel("AdaECE (lower is better)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(methods: dict[str, dict[str, dict]], output: Path, meta: dict) -> tuple[Path, Path]:
    """<output>.json (meta, per-method summary, every seed's full result) and <output>.png."""
    output.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = output.with_name(output.name + ".json"), output.with_name(output.name + ".png")
    report = {**meta, "summary": summarize(methods), "methods": methods}
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    plot(methods, png_path, f"Calibration under shift, {meta['dataset']} (n = {meta['n_images']})")
    return json_path, png_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch

    from pclm.data.vision import VISION_DATASETS, load_vision_dataset
    from pclm.errors import UsageError
    from pclm.evaluation.calibration import calibration_under_corruption
    from pclm.evaluation.vision import predict_logits
    from pclm.folders import check_writable
    from pclm.vision.classifier import load_vision_run
    from pclm.vision.corruptions import CORRUPTIONS, LEVELS

    try:
        runs = parse_runs(args.runs)
        if args.dataset not in VISION_DATASETS:
            raise UsageError(f"unknown dataset '{args.dataset}' (choose from {', '.join(VISION_DATASETS)})")
        if args.test_size is not None and args.test_size < 1:
            raise UsageError(f"--test-size must be positive, got {args.test_size}")
        if args.n_bins < 1 or args.batch_size < 1:
            raise UsageError("--n-bins and --batch-size must be positive")
        output = Path(args.output)
        if output.suffix in (".json", ".png"):
            output = output.with_suffix("")
        check_writable([output.with_name(output.name + ext) for ext in (".json", ".png")], "the folder of --output")
        images, labels = load_vision_dataset(args.dataset, args.data_dir, "test")
        if args.test_size is not None and args.test_size < len(labels):
            keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))[: args.test_size]
            images, labels = images[keep], labels[keep]
        methods: dict[str, dict[str, dict]] = {}
        for method, dirs in runs.items():
            methods[method] = {}
            for run_dir in dirs:
                model, run_cfg = load_vision_run(run_dir)
                shape = VISION_DATASETS.get(run_cfg.data.dataset, (None, None, None))
                if shape != VISION_DATASETS[args.dataset]:  # channels, size, classes
                    raise UsageError(
                        f"run '{run_dir}' was trained on {run_cfg.data.dataset}, whose images and "
                        f"classes differ from {args.dataset}'s"
                    )

                def predict_fn(x: torch.Tensor, model=model) -> torch.Tensor:
                    return predict_logits(model, x, batch_size=args.batch_size)

                methods[method][str(run_dir)] = calibration_under_corruption(
                    predict_fn, images, labels, seed=args.seed, n_bins=args.n_bins
                )
                clean = methods[method][str(run_dir)]["clean"]
                print(
                    f"{method} {run_dir}: clean AdaECE {clean['adaece']:.4f}, accuracy {clean['accuracy']:.4f}",
                    flush=True,
                )
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = {
        "command": shlex.join(["pclm-report", "calibration", *argv]),
        "dataset": args.dataset,
        "data_dir": str(args.data_dir),
        "n_images": len(labels),
        "seed": args.seed,
        "n_bins": args.n_bins,
        "corruptions": list(CORRUPTIONS),
        "levels": {k: list(v) for k, v in LEVELS.items()},
    }
    paths = write_outputs(methods, output, meta)
    for method, rows in summarize(methods).items():
        print(
            method
            + ": "
            + "  ".join(f"{'clean' if i == '0' else i}={r['adaece_median']:.4f}" for i, r in rows.items())
            + "  (median AdaECE)"
        )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
