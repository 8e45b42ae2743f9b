#!/usr/bin/env python
"""Benchmark one training step on CPU and print ratios of competing paths, measured side by side.

    python benchmarks/bench_step.py                                   # batch 128, seq 32, fp32 and bf16, 3 repeats
    python benchmarks/bench_step.py --repeats 5 --json reports/bench_step.json
    python benchmarks/bench_step.py --sections pc --profile           # + top ops of one BP step vs one iPC evaluation

Every model, algorithm and PC setting is read from the shipped configs (`configs/<task>_<algo>.yaml`, through
`pclm.config.load_config`): the benchmark times what `scripts/train_lm.py` trains. Only the batch is a flag
(default 128 for every method, so that steps compare at equal work).

Sections (all by default):
  hf       pclm BP step (train_batch + AdamW) vs Hugging Face BERT (loss.backward, AdamW) at the same sizes, at
           fp32 and at bf16 autocast; pclm also with its readout unfused (full logits); each pclm step's matmul
           throughput as a share of this CPU's measured matmul peak at that precision.
  pc       PC / iPC at the configs' settings: one train_batch call / algorithm.steps, as a ratio to one BP step
           of the same model.
In-process timings: every path is warmed up first, repeats are interleaved (order alternates), medians compared;
the ratio of minima is shown too, because the 2-core machine is shared and other loads inflate single samples.
Retired sections (docs/lab_notes.md, "Retired drivers"): `hygiene` (what configure_cpu's threads and malloc settings
buy), `memory` (peak memory of an iPC batch vs a BP batch, fused vs unfused readout) and `compile` (iPC's
train_batch, eager vs train.backend=compiled).
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from statistics import median

from pclm.errors import ArgumentParser

VOCAB = 8001  # the shipped tokenizer's vocabulary
MASK_ID = 4  # any id: the benchmark never decodes
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SECTIONS = ("hf", "pc")


def shipped(task: str, algo: str, overrides: tuple[str, ...] = ()):
    """The resolved RunConfig of `configs/<task>_<algo>.yaml`, with dotted `overrides`."""
    from pclm.config import load_config

    return load_config(CONFIGS / f"{task}_{algo}.yaml", list(overrides))


# ----------------------------------------------------------------------------------------------- models, batches
def make_batch(task: str, batch: int, seq: int, seed: int = 0, source: str = "sample") -> dict[str, torch.Tensor]:
    """One training batch, the same for every contender. "sample": the first batch a training run of `task` draws
    from the embedded 1B Word sample (sentences of at most `seq` tokens, padded to the batch's longest, the mlm
    collator's 15% masking; labels -100 where there is no target). "random": random tokens, no padding; mlm: 15% of
    positions masked, labels -100 elsewhere; clm: labels = inputs."""
    if source == "sample":
        return {k: v.clone() for k, v in _sample_batch(task, batch, seq, seed).items()}
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, seq), generator=g)  # (B, T)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if task == "clm":
        return {**out, "labels": ids.clone()}
    picked = torch.rand(batch, seq, generator=g) < 0.15
    return {**out, "input_ids": ids.masked_fill(picked, MASK_ID), "labels": ids.masked_fill(~picked, -100)}


@functools.lru_cache(maxsize=None)
def _sample_batch(task: str, batch: int, seq: int, seed: int) -> dict[str, torch.Tensor]:
    """The first training batch of `task` from the embedded 1B Word sample, shuffled with `seed`, collated as
    training does."""
    from torch.utils.data import DataLoader

    from pclm.data import load_lm1b, tokenize_lm1b, train_collator
    from pclm.training.lm import load_tokenizer

    tokenizer = load_tokenizer(None)
    train = tokenize_lm1b(load_lm1b(), tokenizer, seq)["train"].with_format(columns=["input_ids"])
    collate = train_collator(task, tokenizer)
    loader = DataLoader(train, batch, shuffle=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # the mlm collator's masking draws from the global generator
    b = next(iter(loader))
    return {k: b[k] for k in ("input_ids", "attention_mask", "labels")}


def pclm_model(task: str, algo: str, seq: int) -> torch.nn.Module:
    """The model of `configs/<task>_<algo>.yaml` (its `model` section: sizes, layer norm)."""
    from pclm.models import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM

    m = dict(shipped(task, algo).model)
    m["max_position_embeddings"] = max(m.get("max_position_embeddings", 128), seq)
    cfg = PCLMConfig(vocab_size=VOCAB, **m)
    return (PCLMForMaskedLM if task == "mlm" else PCLMForCausalLM)(cfg)


def hf_model(task: str, seq: int, like: torch.nn.Module) -> torch.nn.Module:
    """transformers' BERT with the sizes of the pclm model `like`: no dropout, untied decoder (pclm does not tie),
    no cache."""
    from transformers import BertConfig, BertForMaskedLM, BertLMHeadModel

    c = like.config
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
        tie_word_embeddings=False,
        is_decoder=task == "clm",
        use_cache=False,
    )
    return (BertForMaskedLM if task == "mlm" else BertLMHeadModel)(cfg)


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def pclm_step(
    model,
    batch,
    task: str,
    algo: str,
    bf16: bool,
    readout: str = "fused",
    overrides: tuple[str, ...] = (),
) -> tuple[Callable, object]:
    """One pclm training step through the library's own path: train_batch with the schedule, learning rates and
    value nodes of `configs/<task>_<algo>.yaml`, gradients by autograd. `readout="full"`: the readout through the full
    logits instead of the fused readout (`EnergyGraph.fused_readout`), as before the fused readout existed."""
    from pclm.algorithms import build_algorithm
    from pclm.models.value_nodes import value_node_selector
    from pclm.pc import EnergyGraph
    from pclm.training.backends import Autograd
    from pclm.training.step import train_batch, weight_groups

    cfg = shipped(task, algo, overrides)
    algorithm = build_algorithm(
        algo, cfg.pc.inference_steps, cfg.pc.inference_lr, cfg.pc.discount, x_grads=cfg.pc.x_grads
    )
    optim = torch.optim.AdamW(
        weight_groups(model),
        lr=cfg.train.lr,
        betas=tuple(cfg.train.betas),
        weight_decay=cfg.train.weight_decay,
        fused=True,
    )  # as pclm.training.lm
    select = value_node_selector(cfg.pc.value_nodes)

    class FullReadout(EnergyGraph):
        fused_readout = False

    gradients = Autograd(select, new_graph=FullReadout if readout == "full" else EnergyGraph)

    def step() -> None:
        with autocast(bf16):
            train_batch(model, batch, algorithm, optim, gradients)

    return step, algorithm


def hf_step(model, batch, bf16: bool, lr: float = 1e-3) -> Callable:
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def step() -> None:
        with autocast(bf16):
            loss = model(**batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()

    return step


# ----------------------------------------------------------------------------------------------------- timing
def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """This CPU's matmul throughput in FLOP/s at `dtype`: the best of `repeats` (n, n) @ (n, n) products."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / min(race({"mm": lambda: a @ b}, repeats, warmup=1)["mm"])


def matmul_flops(step: Callable) -> float:
    """Matmul FLOPs of one call of `step` (forward and backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def bench_hf(args) -> list[dict]:
    rows = []
    peaks = {bf16: matmul_peak(torch.bfloat16 if bf16 else torch.float32) for bf16 in (False, True)}
    for bf16 in (False, True):
        for task, hf_name, target in (("mlm", "BertForMaskedLM", 3.0), ("clm", "BertLMHeadModel", 1.5)):
            torch.manual_seed(0)
            batch = make_batch(task, args.batch, args.seq, source=args.batches)
            ours = pclm_model(task, "bp", args.seq)
            unfused = copy.deepcopy(ours)
            theirs = hf_model(task, args.seq, ours)
            step_ours, _ = pclm_step(ours, batch, task, "bp", bf16)
            step_unfused, _ = pclm_step(unfused, batch, task, "bp", bf16, readout="full")
            flops = matmul_flops(step_ours)
            t = race(
                {"pclm": step_ours, "unfused": step_unfused, "hf": hf_step(theirs, batch, bf16)},
                args.repeats,
                args.warmup,
            )
            rows.append(
                {
                    "task": task,
                    "precision": "bf16" if bf16 else "fp32",
                    "hf_model": hf_name,
                    "pclm_s": t["pclm"],
                    "unfused_s": t["unfused"],
                    "hf_s": t["hf"],
                    "speedup": median(t["hf"]) / median(t["pclm"]),
                    "speedup_min": min(t["hf"]) / min(t["pclm"]),
                    "fused_speedup": median(t["unfused"]) / median(t["pclm"]),
                    "target": target,
                    "matmul_gflop": flops / 1e9,
                    "peak_gflops": peaks[bf16] / 1e9,
                    "peak_share": flops / median(t["pclm"]) / peaks[bf16],
                    "params_pclm": sum(p.numel() for p in ours.parameters()),
                    "params_hf": sum(p.numel() for p in theirs.parameters()),
                    "hf_attn": theirs.config._attn_implementation,
                }
            )
            del ours, unfused, theirs
    print(
        "\n[hf] one BP training step (forward, backward, AdamW) of configs/<task>_bp.yaml's model, batch "
        f"{args.batch}: pclm train_batch vs transformers BERT, and pclm with its readout unfused (full logits)"
        f"\n     matmul peak of this CPU (2048^3 mm, best of 5): fp32 {peaks[False] / 1e9:.0f} GFLOP/s, "
        f"bf16 {peaks[True] / 1e9:.0f} GFLOP/s; 'of peak' = step's matmul FLOPs / step time / peak"
    )
    print(
        f"{'task':5} {'prec':4} {'HF model':16} {'pclm ms':>8} {'unfused':>8} {'HF ms':>8} {'HF/pclm':>8} {'(min)':>6} "
        f"{'target':>6} {'unfused/pclm':>12} {'GFLOP':>6} {'of peak':>7}"
    )
    for r in rows:
        print(
            f"{r['task']:5} {r['precision']:4} {r['hf_model']:16} {1e3 * median(r['pclm_s']):8.1f} "
            f"{1e3 * median(r['unfused_s']):8.1f} {1e3 * median(r['hf_s']):8.1f} {r['speedup']:7.2f}x {r['speedup_min']:5.2f}x "
            f"{'>=' + str(r['target']):>6} {r['fused_speedup']:11.2f}x {r['matmul_gflop']:6.1f} {100 * r['peak_share']:6.0f}%"
        )
    return rows


def bench_pc(args) -> list[dict]:
    rows = []
    # iPC's schedule with no value nodes (T AdamW steps on the BP gradient): the equal-updates control
    variants = (("ipc", ()), ("pc", ()), ("ipc", ("pc.value_nodes=none",)))
    for task in ("mlm", "clm"):
        for algo, overrides in variants:
            cfg = shipped(task, algo, overrides)
            torch.manual_seed(0)
            batch = make_batch(task, args.batch, args.seq, source=args.batches)
            model = pclm_model(task, algo, args.seq)
            step_pc, algorithm = pclm_step(model, batch, task, algo, args.bf16, overrides=overrides)
            step_bp, _ = pclm_step(model, batch, task, "bp", args.bf16)
            t = race({algo: step_pc, "bp": step_bp}, args.repeats, args.warmup)
            per_eval = median(t[algo]) / algorithm.steps
            rows.append(
                {
                    "task": task,
                    "algo": algo,
                    "overrides": list(overrides),
                    "T": cfg.pc.inference_steps,
                    "steps": algorithm.steps,
                    "value_nodes": cfg.pc.value_nodes,
                    "layer_norm": cfg.model.get("layer_norm", True),
                    "call_s": t[algo],
                    "bp_s": t["bp"],
                    "per_eval_over_bp": per_eval / median(t["bp"]),
                    "per_eval_over_bp_min": min(t[algo]) / algorithm.steps / min(t["bp"]),
                    "call_over_bp": median(t[algo]) / median(t["bp"]),
                }
            )
            del model
    print(
        f"\n[pc] PC / iPC at the settings of configs/<task>_<algo>.yaml ({'bf16' if args.bf16 else 'fp32'}): one "
        "train_batch call / algorithm.steps,\n     relative to one BP step of the same model (target <= 1.0)"
    )
    print(
        f"{'task':5} {'algo':4} {'T':>3} {'evals':>5} {'LN':>3} {'value nodes':12} {'call ms':>9} {'BP ms':>8} "
        f"{'eval/BP (median)':>17} {'(min)':>6} {'call/BP':>8}"
    )
    for r in rows:
        print(
            f"{r['task']:5} {r['algo']:4} {r['T']:3d} {r['steps']:5d} {'on' if r['layer_norm'] else 'off':>3} "
            f"{r['value_nodes']:12} {1e3 * median(r['call_s']):9.1f} {1e3 * median(r['bp_s']):8.1f} "
            f"{r['per_eval_over_bp']:16.2f}x {r['per_eval_over_bp_min']:5.2f}x {r['call_over_bp']:7.2f}x"
        )
    return rows


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm")


def _profiled(step, calls: int = 1) -> tuple[list, float, float]:
    """Profile `calls` calls of a warmed-up step: (ops by self CPU time, total and matmul self-CPU ms per call)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(calls):
            step()
    ops = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops) / 1e3 / calls
    matmul = sum(e.self_cpu_time_total for e in ops if e.key in MATMUL_OPS) / 1e3 / calls
    return ops, total, matmul


def profile_ops(args) -> dict:
    """Top ops (self CPU time) of one BP step and of one iPC train_batch, per evaluation, masked and causal; and the
    matmuls' share of the self-CPU time of a pclm BP step and of transformers' step."""
    out = {}
    for task in ("mlm", "clm"):
        model = pclm_model(task, "ipc", args.seq)
        batch = make_batch(task, args.batch, args.seq, source=args.batches)
        for algo in ("bp", "ipc"):
            step, algorithm = pclm_step(model, batch, task, algo, args.bf16)
            step()
            ops, total, matmul = _profiled(step)
            top = [
                {
                    "op": e.key,
                    "shapes": str(e.input_shapes)[:70],
                    "calls_per_eval": e.count / algorithm.steps,
                    "ms_per_eval": e.self_cpu_time_total / 1e3 / algorithm.steps,
                }
                for e in ops[: args.profile_top]
            ]
            out[f"{task}:{algo}"] = {"ms_per_eval": total / algorithm.steps, "matmul_ms": matmul, "top": top}
            print(
                f"\n[profile] {task} {algo} (T={algorithm.steps}): {total / algorithm.steps:.1f} ms self CPU per evaluation"
            )
            for op in top:
                print(f"  {op['ms_per_eval']:8.1f} ms  x{op['calls_per_eval']:<5.1f} {op['op']:34} {op['shapes']}")
        bp, _ = pclm_step(pclm_model(task, "bp", args.seq), batch, task, "bp", args.bf16)
        hf = hf_step(hf_model(task, args.seq, model), batch, args.bf16)
        for name, step in (("pclm", bp), ("transformers", hf)):
            step()
            _, total, matmul = _profiled(step, calls=3)
            out[f"{task}:bp_matmul_share:{name}"] = {"ms": total, "matmul_ms": matmul}
            print(
                f"[profile] {task} BP step, {name}: matmuls {matmul:.1f} of {total:.1f} ms self CPU "
                f"({100 * matmul / total:.0f}%; {', '.join(o.removeprefix('aten::') for o in MATMUL_OPS)})"
            )
    return out


# --------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=32, help="tokens per sentence at most (the training max_length)")
    p.add_argument(
        "--batches",
        choices=["sample", "random"],
        default="sample",
        help="sample (default): a real training batch from the embedded 1B Word sample, padded as training pads it; "
        "random: random tokens at full length, no padding",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed calls per path, interleaved (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per path first (default 1)")
    p.add_argument("--threads", default="auto", help="passed to configure_cpu (default auto: every core)")
    p.add_argument("--bf16", action="store_true", help="run every step under torch.autocast('cpu', bfloat16)")
    p.add_argument("--json", help="also write every measurement to this JSON file")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: both)",
    )
    p.add_argument("--profile", action="store_true", help="also print the top ops of a BP step and an iPC evaluation")
    p.add_argument("--profile-top", type=int, default=8, help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.common when run as a file

import torch  # noqa: E402

from benchmarks.common import command_line, cpu_name, race, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad or args.batch < 1 or args.seq < 2 or args.repeats < 1 or args.warmup < 0:
        print(
            f"error: bad arguments ({'unknown section ' + bad[0] if bad else 'need batch >= 1, seq >= 2, repeats >= 1'})",
            file=sys.stderr,
        )
        return 2
    if args.json and not Path(args.json).resolve().parent.is_dir():
        print(f"error: --json: folder '{Path(args.json).parent}' does not exist", file=sys.stderr)
        return 2
    import transformers

    from pclm.cpu import configure_cpu

    cpu = configure_cpu(args.threads)
    load0 = os.getloadavg()
    print(f"configure_cpu() applied: {cpu}")
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {cpu_name()}, {os.cpu_count()} CPUs, "
        f"load average {load0[0]:.2f} at start"
    )
    m = pclm_model("clm", "ipc", args.seq).config
    print(
        f"models from configs/<task>_<algo>.yaml: vocab {VOCAB}, hidden {m.hidden_size}, {m.num_hidden_layers} "
        f"layers, {m.num_attention_heads} head, intermediate {m.intermediate_size}; "
        f"batch {args.batch}, seq {args.seq} ({args.batches} batches), "
        f"{'bf16 autocast' if args.bf16 else 'fp32'} (pc section), "
        f"{args.warmup} warm-up + {args.repeats} timed calls per path"
    )
    result: dict = {
        "command": command_line("bench_step.py", argv),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_model": cpu_name(),
        "cpus": os.cpu_count(),
        "cpu_config": cpu,
        "batch": args.batch,
        "batches": args.batches,
        "seq": args.seq,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "bf16": args.bf16,
        "load_average_start": load0,
    }
    t0 = time.perf_counter()
    if "hf" in sections:
        result["hf"] = bench_hf(args)
    if "pc" in sections:
        result["pc"] = bench_pc(args)
    if args.profile:
        result["profile"] = profile_ops(args)
    result["load_average_end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - t0
    print(f"\nload average at end {result['load_average_end'][0]:.2f}; wall time {result['wall_s']:.0f} s")
    if args.json:
        write_json(Path(args.json), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
