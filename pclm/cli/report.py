"""Reports of finished runs, as JSON + Markdown (+ PNG) in reports/ (`pclm-report`):

    pclm-report runs --name clm_ipc runs/clm_ipc           # Table-3 cells of run folders (or per-seed lists)
    pclm-report plan runs/lm_table3_full --name lm_table3_full --unigram reports/unigram_full_pool.json
    pclm-report transfer runs/lm_table3_full SAMPLE.txt --name lm_table3_full_transfer
    pclm-report unigram --data-dir ../shared/data/lm1b --json reports/unigram.json
    pclm-report vision --output reports/vision_cnn_cpu --cell "CNN/BP=runs/bp0,runs/bp1" --paper "CNN/BP=69.34"
    pclm-report calibration --runs BP=runs/bp0 --runs iPC=runs/ipc0 --dataset cifar10 --data-dir DIR --output OUT

`runs` is pclm.cli.report_runs (also scripts/report.py), `plan` pclm.cli.report_plan (also scripts/report_plan.py),
`transfer` pclm.cli.report_transfer, `unigram` pclm.cli.unigram_baseline; the vision suite's `vision`
pclm.cli.report_vision and `calibration` pclm.cli.report_calibration.
"""

from __future__ import annotations

from pclm.cli import subcommands

main, run = subcommands("pclm-report", __doc__)

if __name__ == "__main__":
    run()
