"""Launch many training runs, each in its own process and folder, resumable (`pclm-run`):

    pclm-run seeds --task clm --algo ipc --seeds 0-4 --output-dir runs/clm_ipc -- --data-dir ../shared/data/lm1b
    pclm-run sweep configs/grids/clm_ipc.yaml --output-dir runs/grid_clm_ipc -- --data-dir ../shared/data/lm1b
    pclm-run plan experiments/lm_table3/lm_table3_full.yaml --output-dir runs/lm_table3_full --workers 2 -- ...

`seeds` is pclm.cli.run_seeds, `sweep` pclm.cli.sweep, `plan` pclm.cli.run_plan (also scripts/run_seeds.py,
scripts/sweep.py, scripts/run_plan.py); re-running any of them skips finished runs and resumes the rest.
"""

from __future__ import annotations

from pclm.cli import subcommands

main, run = subcommands("pclm-run", __doc__)

if __name__ == "__main__":
    run()
