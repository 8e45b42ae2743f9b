"""The product's commands (console scripts `pclm-*`, or `python -m pclm.cli.<name>`); the shims in scripts/ call the
same `main` functions.

`pclm-run` and `pclm-report` have subcommands (`pclm-run seeds ...`, `pclm-report plan ...`): `dispatch` lets the first
argument pick a module of pclm.cli, which gets the rest of the arguments. The module is imported only once chosen, so
`--help` and a bad subcommand are answered at once, and a subcommand behaves exactly as its module run on its own."""

from __future__ import annotations

import argparse
import importlib
import sys

from pclm.errors import ArgumentParser

__all__ = ["dispatch"]


def dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
    """`commands`: subcommand -> (module, one-line help). Returns the chosen module's `main(rest of argv)`."""
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=list(commands), help="; ".join(f"{k}: {h}" for k, (_, h) in commands.items()))
    p.add_argument("args", nargs=argparse.REMAINDER, help=f"the subcommand's own arguments (`{prog} COMMAND --help`)")
    args = p.parse_args(argv)
    # every argument after the subcommand is the module's, untouched (argparse's REMAINDER keeps flags and `--`)
    return importlib.import_module(commands[args.command][0]).main(args.args)
