"""Train a vision classifier (MLP, CNN, AlexNet, width-scaled CNN) with BP, PC, iPC or Z-IL, on the same loop and
step as the language models.

    accelerate launch scripts/train_vision.py --model mlp --dataset mnist --algo ipc --output-dir runs/mlp_mnist_ipc
    pclm-train-vision --config configs/vision/cnn_cifar10_ipc.yaml train.epochs=5      # the same, installed

Without --config, configs/vision/<model>_<dataset>_<algo>.yaml is used when it exists (the paper's settings), else
the built-in defaults. Positional `section.key=value` arguments override the config. The data folder defaults to
../shared/data/<dataset> when it exists. Bad input exits with code 2 and one line, writing nothing; a diverged run
exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # pclm/, with configs/ as package data
SHARED_DATA = PACKAGE.parents[1] / "shared" / "data"  # a checkout's ../shared/data
DATA_FOLDERS = {"cifar10": "cifar10-jpeg"}  # data set name -> folder name under ../shared/data, where they differ


def default_data_dir(dataset: str) -> str | None:
    """../shared/data/<dataset> (or its known folder name) when it exists."""
    for folder in (DATA_FOLDERS.get(dataset, dataset), dataset):
        if (SHARED_DATA / folder).is_dir():
            return str(SHARED_DATA / folder)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pclm.cli import parse_training_args

    flags = {
        "--model": "mlp, cnn, alexnet or width_cnn (default: the config's, else mlp)",
        "--dataset": "mnist, fashion-mnist, cifar10, ... (default: the config's, else mnist)",
        "--algo": "bp, pc, ipc or zil (default: the config's, else ipc)",
        "--config": "YAML config (default: configs/vision/<model>_<dataset>_<algo>.yaml if present)",
        "--data-dir": "data set folder (default: ../shared/data/<dataset> when it exists)",
        "--output-dir": "run folder (default: runs/vision/<model>_<dataset>_<algo>_seed<seed>)",
    }
    return parse_training_args(__doc__, flags, "continue the run in --output-dir from its last checkpoint", argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pclm.config import load_config
    from pclm.cpu import configure_cpu
    from pclm.errors import DiskFull, UsageError, report_disk_full, report_usage_error
    from pclm.training.vision import train_vision

    try:
        config = args.config
        if config is None:
            guess = (
                PACKAGE
                / "configs"
                / "vision"
                / f"{args.model or 'mlp'}_{args.dataset or 'mnist'}_{args.algo or 'ipc'}.yaml"
            )
            config = guess if guess.is_file() else None
        flags = {
            "algo": args.algo,
            "seed": args.seed,
            "model.name": args.model,
            "data.dataset": args.dataset,
            "data.data_dir": args.data_dir,
        }
        cfg = load_config(config, args.overrides, tasks=("vision",), **flags)
        if cfg.data.data_dir is None:
            found = default_data_dir(cfg.data.dataset)
            if found is None:
                raise UsageError(
                    f"no data folder for dataset '{cfg.data.dataset}' ({SHARED_DATA / cfg.data.dataset} "
                    "does not exist): pass --data-dir"
                )
            cfg.data.data_dir = found
        name = f"{cfg.model['name']}_{cfg.data.dataset}_{cfg.algo}_seed{cfg.seed}"
        output = Path(args.output_dir or Path("runs") / "vision" / name)
        cpu = configure_cpu(args.threads, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        metrics = train_vision(cfg, output, resume=args.resume, overwrite=args.overwrite, cpu_info=cpu)
    except UsageError as err:
        return report_usage_error(err)
    except DiskFull as err:
        return report_disk_full(err)
    from pclm.cli import report_training

    nan = float("nan")
    scores = [
        f"dev accuracy {metrics.get('dev_accuracy', nan):.4f}",
        f"test accuracy {metrics.get('test_accuracy', nan):.4f}",
        f"{metrics.get('mean_seconds_per_epoch')} s/epoch",
    ]
    return report_training(metrics, output, f"{cfg.model['name']} {cfg.data.dataset} {cfg.algo}", scores)


def run() -> None:
    """The `pclm-train-vision` console command."""
    sys.exit(main())


if __name__ == "__main__":
    run()
