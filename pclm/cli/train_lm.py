"""Train a PCLM language model with BP, PC or iPC.

    accelerate launch scripts/train_lm.py --algo ipc                      # masked LM, embedded 1B Word sample
    accelerate launch scripts/train_lm.py --task clm --algo pc --data-dir ../shared/data/lm1b train.epochs=4
    pclm-train-lm --algo bp                                               # the same, from an installed pclm

Without --config, configs/<task>_<algo>.yaml (the paper's best hyperparameters, shipped with the package) is used. Positional
`section.key=value` arguments override the config. Bad input exits with code 2 and one line, writing nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # pclm/, with configs/ as package data
TASKS = ("mlm", "clm")  # the tasks this command trains; a vision config is train_vision's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pclm.cli import parse_training_args

    flags = {
        "--algo": "bp, pc or ipc (default: the config's)",
        "--task": "mlm or clm (default: the config's, else mlm)",
        "--config": "YAML config (default: configs/<task>_<algo>.yaml)",
        "--data-dir": "1B Word release root (default: the embedded sample)",
        "--output-dir": "run folder (default: ./runs/<task>_<algo>_seed<seed>)",
    }
    resume = "continue the run in --output-dir from its last checkpoint, with its saved config (overrides must agree)"
    return parse_training_args(__doc__, flags, resume, argv)


def _flags(args: argparse.Namespace) -> dict:
    return {"task": args.task, "algo": args.algo, "seed": args.seed, "data.data_dir": args.data_dir}


def _saved_config(output: Path) -> dict:
    import json

    from pclm.errors import UsageError

    try:
        saved = json.loads((output / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--resume: cannot read '{output / 'config.json'}' ({err})") from None
    if not isinstance(saved, dict):
        raise UsageError(f"--resume: '{output / 'config.json'}' is not a run's config")
    return saved


def launch_prefix() -> list[str]:
    """How this process was started, as the words before its own arguments: `pclm-train-lm`, `accelerate launch
    scripts/train_lm.py` or `python scripts/train_lm.py` (for the model card and the --resume hint)."""
    if Path(sys.argv[0]).name == "pclm-train-lm":
        return ["pclm-train-lm"]
    script = sys.argv[0] if sys.argv[0].endswith(".py") else "scripts/train_lm.py"
    if "ACCELERATE_DYNAMO_BACKEND" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ:
        return ["accelerate", "launch", script]
    return ["python", script]


def report_interrupt(command: list[str] | None, output: Path | None) -> int:
    """A Ctrl-C: the loop wrote status `interrupted`; say how to go on. Exit code 130 (128 + SIGINT)."""
    from accelerate import PartialState

    if PartialState().is_main_process and command is not None and output is not None:
        words = [w for w in command if w not in ("--overwrite", "--resume")]
        if "--output-dir" not in words:
            words += ["--output-dir", str(output)]
        import shlex

        print(f"\ninterrupted: continue with\n  {shlex.join([*words, '--resume'])}", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pclm.config import load_config
    from pclm.errors import DiskFull, UsageError, report_disk_full, report_usage_error
    from pclm.folders import is_run_folder

    try:
        config = args.config
        if config is None:
            task, algo = args.task or "mlm", args.algo or "ipc"
            config = (PACKAGE / "configs").resolve() / f"{task}_{algo}.yaml"  # the repository folder in a checkout
            if not config.is_file():
                raise UsageError(
                    f"no config for task '{task}' and algorithm '{algo}' ({config} is missing): "
                    "choose --task mlm|clm and --algo bp|pc|ipc, or pass --config"
                )
        cfg = load_config(config, args.overrides, tasks=TASKS, **_flags(args))
        if args.output_dir is not None and not args.output_dir.strip():
            raise UsageError(
                "--output-dir is empty: name a folder, or leave the flag out for runs/<task>_<algo>_seed<k>"
            )
        output = Path(args.output_dir or Path("runs") / f"{cfg.task}_{cfg.algo}_seed{cfg.seed}")
        if args.resume and args.config is None and is_run_folder(output):
            cfg = load_config(None, args.overrides, base=_saved_config(output), tasks=TASKS, **_flags(args))  # its own
        # torch and the data libraries load only now: every error above reaches the user in well under a second
        from pclm.cpu import configure_cpu
        from pclm.training.lm import train_lm

        cpu = configure_cpu(args.threads, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        command = [*launch_prefix(), *(sys.argv[1:] if argv is None else map(str, argv))]
        metrics = train_lm(cfg, output, resume=args.resume, overwrite=args.overwrite, cpu_info=cpu, command=command)
    except UsageError as err:
        return report_usage_error(err)
    except DiskFull as err:
        return report_disk_full(err)
    except KeyboardInterrupt:
        return report_interrupt(command if "command" in locals() else None, output if "output" in locals() else None)
    from pclm.cli import report_training

    nan = float("nan")
    scores = [
        f"dev perplexity {metrics.get('dev_ppl', nan):.2f}",
        f"test perplexity {metrics.get('test_ppl', nan):.2f}",
    ]
    if "test_sample_ppl" in metrics:
        scores.append(f"official test sample (100 sentences): {metrics['test_sample_ppl']:.2f}")
    return report_training(metrics, output, f"{cfg.task} {cfg.algo}", scores)


def run() -> None:
    """The `pclm-train-lm` console command."""
    sys.exit(main())


if __name__ == "__main__":
    run()
