#!/usr/bin/env python
"""Benchmark the fused readout with and without gathering the rows that have a target, on real batches.

    python scripts/bench_readout_gather.py --threads 1 --repeats 10

Batches are drawn as `scripts/train_lm.py` draws them (the embedded 1B Word sample, pclm's tokenizer, the
conditional collator, a shuffled loader). For each of configs/clm_bp.yaml and configs/clm_ipc.yaml it times one
train_batch call per path, interleaved, each path cycling through the same batches in the same order: `gather`
(only rows with a target enter the readout's matmuls) and `every-row` (`linear_cross_entropy(..., gather=False)`:
every row multiplied, ignored ones zeroed). Prints the share of readout rows without a target (padding, and each
sentence's last position) and the time ratio every-row / gather: median, and min-max over the rounds.
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
    p.add_argument("--max-length", type=int, default=32, help="tokens per sentence, special tokens included")
    p.add_argument("--batches", type=int, default=8, help="distinct real batches each path cycles through")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per path, interleaved (default 10)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="1", help="passed to configure_cpu (default 1)")
    p.add_argument("--algos", default="bp,ipc", help="comma-separated conditional configs to time (default bp,ipc)")
    p.add_argument("--bf16", action="store_true", help="every step under torch.autocast('cpu', bfloat16)")
    return p.parse_args(argv)


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    ARGS = parse_args()

import torch  # noqa: E402
from bench_step import autocast, sample_loader, shipped  # noqa: E402

import pclm.pc.graph as graph_module  # noqa: E402
from pclm.benchmarking import race  # noqa: E402
from pclm.pc import IGNORE_INDEX, linear_cross_entropy  # noqa: E402

GATHER = {"on": True}  # read by the readout that the energy graph calls


def _readout(*args, **kwargs):
    return linear_cross_entropy(*args, **kwargs, gather=GATHER["on"])


def real_batches(args) -> list[dict[str, torch.Tensor]]:
    out = []
    for batch in sample_loader("clm", args.batch, args.max_length, drop_last=True):
        out.append({k: batch[k] for k in ("input_ids", "attention_mask", "labels")})
        if len(out) == args.batches:
            return out
    return out


def untargeted(batches: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
    """Share of the readout's rows (B * T per batch) without a target, and the share that is padding."""
    rows = none = pad = 0
    for b in batches:
        targets = torch.nn.functional.pad(b["labels"][:, 1:], (0, 1), value=IGNORE_INDEX)  # as PCLMForCausalLM
        rows += targets.numel()
        none += int((targets == IGNORE_INDEX).sum())
        pad += int((b["attention_mask"] == 0).sum())
    return none / rows, pad / rows


def path(model, batches, algo: str, gather: bool, bf16: bool):
    from pclm.algorithms import build_algorithm
    from pclm.models.value_nodes import value_node_selector
    from pclm.training.step import train_batch, weight_groups

    cfg = shipped("clm", algo)
    algorithm = build_algorithm(
        algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount, x_grads=cfg.pc.x_grads
    )
    optim = torch.optim.AdamW(
        weight_groups(model),
        lr=cfg.train.lr,
        betas=tuple(cfg.train.betas),
        weight_decay=cfg.train.weight_decay,
        fused=True,
    )
    select = value_node_selector(cfg.pc.value_nodes)
    calls = iter(range(10**9))

    def step() -> None:
        GATHER["on"] = gather
        with autocast(bf16):
            train_batch(model, batches[next(calls) % len(batches)], algorithm, optim, select)

    return step, algorithm.steps


def main(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.max_length < 2 or args.batches < 1 or args.repeats < 1 or args.warmup < 0:
        print("error: need batch >= 1, max-length >= 2, batches >= 1, repeats >= 1, warmup >= 0", file=sys.stderr)
        return 2
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not algos or any(a not in ("bp", "pc", "ipc") for a in algos):
        print(f"error: --algos takes bp, pc, ipc, got '{args.algos}'", file=sys.stderr)
        return 2
    from pclm.cpu import configure_cpu
    from pclm.models import PCLMConfig, PCLMForCausalLM
    from pclm.training.lm import load_tokenizer

    print(f"configure_cpu: {configure_cpu(args.threads)}")
    tokenizer = load_tokenizer(None)
    batches = real_batches(args)
    none, pad = untargeted(batches)
    print(
        f"{len(batches)} real batches of {args.batch} sentences, max_length {args.max_length}: of the readout's rows, "
        f"{100 * none:.1f}% have no target ({100 * pad:.1f}% padding, {100 * (none - pad):.1f}% last positions)"
    )
    graph_module.linear_cross_entropy = _readout
    print(
        f"{'config':14} {'evals':>5} {'gather ms':>10} {'every-row ms':>13} {'every-row/gather':>17} {'(min-max)':>12}"
    )
    for algo in algos:
        torch.manual_seed(0)
        m = dict(shipped("clm", algo).model)
        m["max_position_embeddings"] = max(m.get("max_position_embeddings", 128), args.max_length)
        model = PCLMForCausalLM(PCLMConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **m))
        on, evals = path(model, batches, algo, True, args.bf16)
        off, _ = path(copy.deepcopy(model), batches, algo, False, args.bf16)
        t = race({"gather": on, "every-row": off}, args.repeats, args.warmup)
        ratios = [b / a for a, b in zip(t["gather"], t["every-row"])]  # same round, same batch
        print(
            f"clm_{algo}.yaml{'':4} {evals:5d} {1e3 * statistics.median(t['gather']):10.1f} "
            f"{1e3 * statistics.median(t['every-row']):13.1f} {statistics.median(ratios):16.2f}x "
            f"{min(ratios):5.2f}-{max(ratios):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
