"""User-facing errors: caught at the CLI edge and reported in one line with exit code 2."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = [
    "UsageError",
    "USAGE_EXIT",
    "USAGE_MARKER_ENV",
    "report_usage_error",
    "ArgumentParser",
    "DiskFull",
    "report_disk_full",
    "one_line",
]

USAGE_EXIT = 2
# A launcher may turn exit code 2 into 1 (`accelerate launch` does), so a runner that starts training scripts
# (pclm.runs) names a file here; a script that refuses its input appends its error line to it.
USAGE_MARKER_ENV = "PCLM_USAGE_ERROR_FILE"


class UsageError(ValueError):
    """Bad input a user can fix: a missing path, an unknown name, a bad config key, a corrupt checkpoint."""


def one_line(err: BaseException) -> str:
    """`err` as one line: a YAML parser's problem and where it is, else the first non-empty line of its text."""
    problem, mark = getattr(err, "problem", None), getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"not valid YAML: {problem} (line {mark.line + 1}, column {mark.column + 1})"
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def report_usage_error(err: UsageError) -> int:
    """Print `error: <err>` on stderr, tell a runner waiting on this process (USAGE_MARKER_ENV), return 2."""
    line = f"error: {one_line(err)}"
    print(line, file=sys.stderr)
    marker = os.environ.get(USAGE_MARKER_ENV)
    if marker:
        try:
            with open(marker, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass  # the runner's temporary folder is gone: the exit code still says it
    return USAGE_EXIT


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a missing value) are reported like every other bad input: usage, one
    `error:` line, exit code 2, and the runner told (`report_usage_error`)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        sys.exit(report_usage_error(UsageError(message)))


class DiskFull(Exception):
    """A started run could not write its folder for lack of space; the message says what was kept (a resumable
    checkpoint, the run it was to replace, or nothing)."""


def report_disk_full(err: DiskFull) -> int:
    """Print `error: <err>` on stderr and return exit code 1: not bad input, a run that failed (as a diverged one)."""
    print(f"error: {err}", file=sys.stderr)
    return 1
