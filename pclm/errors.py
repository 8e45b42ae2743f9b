"""User-facing errors: caught at the CLI edge and reported in one line with exit code 2."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["UsageError", "USAGE_EXIT", "USAGE_MARKER_ENV", "report_usage_error", "ArgumentParser"]

USAGE_EXIT = 2
# A launcher may turn exit code 2 into 1 (`accelerate launch` does), so a runner that starts training scripts
# (pclm.runs) names a file here; a script that refuses its input appends its error line to it.
USAGE_MARKER_ENV = "PCLM_USAGE_ERROR_FILE"


class UsageError(ValueError):
    """Bad input a user can fix: a missing path, an unknown name, a bad config key, a corrupt checkpoint."""


def report_usage_error(err: UsageError) -> int:
    """Print `error: <err>` on stderr, tell a runner waiting on this process (USAGE_MARKER_ENV), return 2."""
    line = f"error: {err}"
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
