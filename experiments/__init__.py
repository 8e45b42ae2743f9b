"""Experiments: one folder per study (its driver, plan YAML, run script); results go to reports/."""
