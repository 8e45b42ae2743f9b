"""Reports of finished runs, as JSON + Markdown (+ PNG) in reports/ (`pclm-report`):

    pclm-report runs --name clm_ipc runs/clm_ipc           # Table-3 cells of run folders (or per-seed lists)
    pclm-report plan runs/lm_table3_full --name lm_table3_full --unigram reports/unigram_full_pool.json
    pclm-report transfer runs/lm_table3_full SAMPLE.txt --name lm_table3_full_transfer
    pclm-report unigram --data-dir ../shared/data/lm1b --json reports/unigram.json

`runs` is pclm.cli.report_runs (also scripts/report.py), `plan` pclm.cli.report_plan (also scripts/report_plan.py),
`transfer` pclm.cli.report_transfer, `unigram` pclm.cli.unigram_baseline.
"""

from __future__ import annotations

from pclm.cli import subcommands

main, run = subcommands("pclm-report", __doc__)

if __name__ == "__main__":
    run()
