"""Command-line entry points (console scripts `pclm-*`); `scripts/*.py` call the same `main` functions."""
