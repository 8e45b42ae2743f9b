"""The product's commands (console scripts `pclm-*`, or `python -m pclm.cli.<name>`); the shims in scripts/ call the same
`main` functions."""
