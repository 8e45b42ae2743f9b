#!/usr/bin/env python
"""Benchmark the last block at the rows with a target only against the last block at every row, on real batches.

    python scripts/bench_last_block_rows.py --repeats 12

For configs/mlm_bp.yaml and configs/clm_bp.yaml (or `--configs`), one BP train_batch call per path on a real
training batch (`bench_step.sample_loader`: the embedded 1B Word sample, padded as training pads it), interleaved:
`target-rows` (the library's path: with no value node in the last block, only the rows with a target pass its
attention output and feed-forward) and `every-row` (the whole last block at every row, the rows with a target
picked after it). Prints the share of rows with a target and the time ratio every-row / target-rows: median over
the rounds, and min-max. A config whose last block holds a value node takes the same path twice (ratio ~1).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

from pclm.errors import ArgumentParser

sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=32, help="tokens per sentence at most (the training max_length)")
    p.add_argument("--repeats", type=int, default=12, help="timed calls per path, interleaved (default 12)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="auto", help="passed to configure_cpu (default auto: every core)")
    p.add_argument("--configs", default="mlm_bp,clm_bp", help="comma-separated <task>_<algo> (default mlm_bp,clm_bp)")
    return p.parse_args(argv)


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    ARGS = parse_args()

import torch  # noqa: E402
from bench_step import make_batch, pclm_model, pclm_step  # noqa: E402

import pclm.models.modeling_pclm as modeling  # noqa: E402
from pclm.benchmarking import race  # noqa: E402
from pclm.pc import IGNORE_INDEX  # noqa: E402

_IS_NODE = modeling._is_node


def _every_row(nodes, name: str) -> bool:
    """`_is_node` as if the last block held value nodes, so that every row passes it."""
    return name.endswith((".attn", ".ffn", ".out")) or _IS_NODE(nodes, name)


def target_share(task: str, batch: dict[str, torch.Tensor]) -> float:
    labels = batch["labels"]
    if task == "clm":
        labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # as PCLMForCausalLM
    return float((labels != IGNORE_INDEX).float().mean())


def main(args: argparse.Namespace) -> int:
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [
        c
        for c in configs
        if c.partition("_")[0] not in ("mlm", "clm") or c.partition("_")[2] not in ("bp", "pc", "ipc")
    ]
    if not configs or bad:
        print(
            f"error: --configs takes <task>_<algo> with task mlm|clm and algo bp|pc|ipc, got '{args.configs}'",
            file=sys.stderr,
        )
        return 2
    if args.batch < 1 or args.seq < 2 or args.repeats < 1 or args.warmup < 0:
        print("error: need batch >= 1, seq >= 2, repeats >= 1, warmup >= 0", file=sys.stderr)
        return 2
    from pclm.cpu import configure_cpu

    print(f"configure_cpu: {configure_cpu(args.threads)}")
    print(
        f"{'config':14} {'rows w/ target':>14} {'target-rows ms':>15} {'every-row ms':>13} {'every-row/target-rows':>22} {'(min-max)':>12}"
    )
    for name in configs:
        task, _, algo = name.partition("_")
        torch.manual_seed(0)
        batch = make_batch(task, args.batch, args.seq)
        model = pclm_model(task, algo, args.seq)
        rows, _ = pclm_step(model, batch, task, algo, bf16=False)
        every, _ = pclm_step(copy.deepcopy(model), batch, task, algo, bf16=False)

        def every_row(step=every) -> None:
            modeling._is_node = _every_row
            try:
                step()
            finally:
                modeling._is_node = _IS_NODE

        t = race({"target-rows": rows, "every-row": every_row}, args.repeats, args.warmup)
        ratios = [b / a for a, b in zip(t["target-rows"], t["every-row"])]  # same round
        print(
            f"{name + '.yaml':14} {100 * target_share(task, batch):13.1f}% "
            f"{1e3 * statistics.median(t['target-rows']):15.1f} {1e3 * statistics.median(t['every-row']):13.1f} "
            f"{statistics.median(ratios):21.2f}x {min(ratios):5.2f}-{max(ratios):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
