#!/usr/bin/env bash
# The fidelity ladder's lr probe (issue 25): experiments/lm_fidelity/lm_fidelity_lr.yaml, run exactly as the ladder
# (lm_fidelity_ladder.run.sh with PLAN=lm_fidelity_lr): finished runs' metrics.json go to reports/lm_fidelity_ladder_runs/
# (method names end in _lr<digits>), then the ladder's report, which tables the probe.
PLAN=lm_fidelity_lr exec bash "$(dirname "$0")/lm_fidelity_ladder.run.sh"
