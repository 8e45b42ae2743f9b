"""The product's commands (console scripts `pclm-*`, or `python -m pclm.cli.<name>`); the shims in scripts/ call the
same `main` functions.

`pclm-run` and `pclm-report` have subcommands (`pclm-run seeds ...`, `pclm-report plan ...`): `dispatch` lets the first
argument pick a module of pclm.cli, which gets the rest of the arguments. The module is imported only once chosen, so
`--help` and a bad subcommand are answered at once, and a subcommand behaves exactly as its module run on its own."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

__all__ = ["SUBCOMMANDS", "dispatch", "subcommands", "parse_training_args", "report_training"]

# the commands with subcommands: subcommand -> (module of pclm.cli, one-line help)
SUBCOMMANDS = {
    "pclm-run": {
        "seeds": ("pclm.cli.run_seeds", "one task x algorithm x config, once per seed"),
        "sweep": ("pclm.cli.sweep", "a grid of settings, the best point picked on dev"),
        "plan": ("pclm.cli.run_plan", "an experiment plan: dev tuning, then seeds, side by side"),
    },
    "pclm-report": {
        "runs": ("pclm.cli.report_runs", "Table 3 from run folders or per-seed lists"),
        "plan": ("pclm.cli.report_plan", "an experiment plan's tuning grid and Table 3"),
        "transfer": ("pclm.cli.report_transfer", "each finished seed's perplexity on a text file"),
        "unigram": ("pclm.cli.unigram_baseline", "the unigram model's perplexity on the same data"),
        "vision": ("pclm.cli.report_vision", "a table of vision runs' test accuracy, the paper's beside"),
        "calibration": ("pclm.cli.report_calibration", "vision runs' AdaECE under six corruptions (Fig. 3 left)"),
    },
}


def dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
    """`commands`: subcommand -> (module, one-line help). Returns the chosen module's `main(rest of argv)`."""
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=list(commands), help="; ".join(f"{k}: {h}" for k, (_, h) in commands.items()))
    p.add_argument("args", nargs=argparse.REMAINDER, help=f"the subcommand's own arguments (`{prog} COMMAND --help`)")
    args = p.parse_args(argv)
    # every argument after the subcommand is the module's, untouched (argparse's REMAINDER keeps flags and `--`)
    return importlib.import_module(commands[args.command][0]).main(args.args)


def subcommands(prog: str, description: str):
    """`main(argv) -> exit code` and the console command `run()` of `prog`, whose first argument picks one of its
    `SUBCOMMANDS` (`dispatch`)."""

    def main(argv: list[str] | None = None) -> int:
        return dispatch(prog, description, SUBCOMMANDS[prog], argv)

    def run() -> None:
        sys.exit(main())

    return main, run


def parse_training_args(description: str, flags: dict[str, str], resume: str, argv: list[str] | None):
    """A training command's arguments: its own string `flags` (flag -> help), then --seed, --resume (help `resume`),
    --overwrite, --threads and the positional `section.key=value` overrides, which every training command takes."""
    p = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, help in flags.items():
        p.add_argument(flag, help=help)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help=resume)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output-dir")
    p.add_argument("--threads", default="auto", help="intra-op threads per process (default: all cores / processes)")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides, e.g. train.lr=0.001")
    return p.parse_intermixed_args(argv)  # overrides may come before or after the flags


def report_training(metrics: dict, output: Path, what: str, scores: list[str]) -> int:
    """A training command's ending: a diverged run's one `error:` line (exit code 1); otherwise the main process
    prints `what` [status]: the `scores`, and where the best model is (exit code 0)."""
    from pclm.runs import DIVERGED, report_divergence

    if metrics["status"] == DIVERGED:
        return report_divergence(metrics, output)
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"{what} [{metrics['status']}]: {' | '.join(scores)}")
        print(f"checkpoint: {metrics['best_model']}")
    return 0
