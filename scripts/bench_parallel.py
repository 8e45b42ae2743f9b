#!/usr/bin/env python
"""Wall time of ONE weight update of an equal-width MLP: BP vs sequential iPC vs layer-parallel iPC (SPEC.md section 3,
the paper's Fig. 6), measured side by side in one process.

    python scripts/bench_parallel.py --quick                     # tiny grid, seconds: checks that everything runs
    python scripts/bench_parallel.py                             # depth {2..32} x width {64,256,1024} x batch {1,16,128}
    python scripts/bench_parallel.py --depths 8 32 --widths 1024 --batches 1 --repeats 11

Paths, on the same initial weights (width W in, W hidden units per layer, `depth` hidden layers, 10 classes):
  bp       `train_batch` with BP on `pclm.vision.MLP`: feedforward + backprop + one SGD step.
  ipc_seq  one iPC step on `MLP` (a Python loop over layers): one evaluation of the energy with existing value
           nodes, one backward, one SGD step of the weights and one of the value nodes, i.e. one iteration of
           `train_batch`'s loop at t >= 1 (the steady state; the batch's feedforward initialisation is not timed).
  ipc_par  the same iPC step on `pclm.vision.StackedMLP`: hidden layers as one batched matmul.
Timing: every path warmed up, repeats interleaved (order alternating), medians compared (minima also stored,
since other loads on a shared machine inflate single samples). Denormals flushed, as in training.
Writes JSON (with the command line and the Table 4 SMM counts) and a heatmap PNG of the ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from pclm.algorithms import BP, IPC
from pclm.benchmarking import race
from pclm.cpu import configure_cpu
from pclm.pc import EnergyGraph, gaussian
from pclm.training.step import train_batch, weight_groups
from pclm.vision import MLP, StackedMLP

CLASSES = 10
ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731
PATHS = ("bp", "ipc_seq", "ipc_par")


def make_batch(width: int, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(batch, width, generator=g),
            "labels": torch.randint(0, CLASSES, (batch,), generator=g)}


def bp_step(model: MLP, batch: dict, lr: float) -> Callable[[], None]:
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    return lambda: train_batch(model, batch, BP(), optim, ALL_GAUSSIAN)


def ipc_step(model: torch.nn.Module, batch: dict, lr: float, inference_lr: float) -> Callable[[], None]:
    """One steady-state iPC step: the body of `train_batch`'s loop at t >= 1, on value nodes initialised once."""
    graph = EnergyGraph(ALL_GAUSSIAN, batch["labels"].shape[0])
    with torch.no_grad():
        model(**batch, nodes=graph)  # feedforward initialisation of the value nodes (not timed)
    optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
    optim_x = torch.optim.SGD(graph.values(), lr=inference_lr)
    algorithm = IPC(2, inference_lr)

    def step() -> None:
        model(**batch, nodes=graph)
        energy = graph.energy()
        if not math.isfinite(energy.item()):  # train_batch reads the energy every step too
            raise RuntimeError("energy diverged; lower --lr / --inference-lr")
        energy.backward()
        graph.scale_value_grads()
        if algorithm.learning_groups(1, len(optim_w.param_groups)):
            optim_w.step()
        optim_w.zero_grad(set_to_none=True)
        if algorithm.updates_x(1):
            optim_x.step()
        optim_x.zero_grad(set_to_none=True)

    return step


def bench_one(depth: int, width: int, batch_size: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    mlp = MLP(in_features=width, width=width, depth=depth + 1, classes=CLASSES)  # depth hidden layers
    stacked = StackedMLP.from_mlp(mlp)
    seq = copy.deepcopy(mlp)
    batch = make_batch(width, batch_size)
    steps = {"bp": bp_step(mlp, batch, args.lr),
             "ipc_seq": ipc_step(seq, batch, args.lr, args.inference_lr),
             "ipc_par": ipc_step(stacked, batch, args.lr, args.inference_lr)}
    times = race(steps, args.repeats, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    L = depth + 1  # weight layers
    return {
        "depth": depth, "width": width, "batch": batch_size, "weight_layers": L,
        "median_s": med, "min_s": low,
        "ipc_seq/bp": med["ipc_seq"] / med["bp"], "ipc_par/bp": med["ipc_par"] / med["bp"],
        "ipc_par/ipc_seq": med["ipc_par"] / med["ipc_seq"],
        "min ipc_par/bp": low["ipc_par"] / low["bp"],
        "smms": {"bp": BP().cost(L).smms, "ipc": IPC(L + 1, args.inference_lr).cost(L).smms},
    }


def heatmap(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    depths = sorted({r["depth"] for r in rows})
    widths = sorted({r["width"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    keys = ("ipc_par/bp", "ipc_seq/bp", "ipc_par/ipc_seq")
    fig, axes = plt.subplots(len(keys), len(batches), figsize=(3.2 * len(batches) + 1, 2.6 * len(keys) + 0.6),
                             squeeze=False, layout="constrained")
    norm = LogNorm(vmin=1 / 8, vmax=8)
    for i, key in enumerate(keys):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            grid = torch.full((len(depths), len(widths)), float("nan"))
            for r in rows:
                if r["batch"] == b:
                    grid[depths.index(r["depth"]), widths.index(r["width"])] = r[key]
            im = ax.imshow(grid.numpy(), cmap="RdBu_r", norm=norm, origin="lower", aspect="auto")
            for (y, x), v in zip(((y, x) for y in range(len(depths)) for x in range(len(widths))), grid.flatten()):
                if v == v:
                    ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(widths)), [str(w) for w in widths])
            ax.set_yticks(range(len(depths)), [str(d) for d in depths])
            ax.set_title(f"{key}, batch {b}", fontsize=9)
            if i == len(keys) - 1:
                ax.set_xlabel("width")
            if j == 0:
                ax.set_ylabel("hidden layers")
    fig.colorbar(im, ax=axes, shrink=0.8, label="time ratio (< 1: numerator faster)")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="hidden layers")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 128])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--inference-lr", type=float, default=0.1)
    p.add_argument("--threads", default="auto", help="intra-op threads ('auto': every core, as in training)")
    p.add_argument("--quick", action="store_true", help="tiny grid (depth {2,8} x width {32,128} x batch {1,16}), "
                                                        "3 repeats: checks that it runs, not a measurement")
    p.add_argument("--json", type=Path, default=Path("reports/bench_parallel.json"))
    p.add_argument("--png", type=Path, default=Path("reports/bench_parallel.png"))
    args = p.parse_args(argv)
    if args.quick:
        args.depths, args.widths, args.batches, args.repeats, args.warmup = [2, 8], [32, 128], [1, 16], 3, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = configure_cpu(args.threads if args.threads == "auto" else int(args.threads))
    print(f"configure_cpu() applied: {cpu}")
    print(f"{'hidden':>6} {'width':>6} {'batch':>6} | {'bp ms':>8} {'ipc_seq':>8} {'ipc_par':>8} | "
          f"{'seq/bp':>7} {'par/bp':>7} {'par/seq':>7} | SMMs bp/ipc")
    rows = []
    for depth in args.depths:
        for width in args.widths:
            for batch in args.batches:
                r = bench_one(depth, width, batch, args)
                rows.append(r)
                m = r["median_s"]
                print(f"{depth:6d} {width:6d} {batch:6d} | {m['bp'] * 1e3:8.3f} {m['ipc_seq'] * 1e3:8.3f} "
                      f"{m['ipc_par'] * 1e3:8.3f} | {r['ipc_seq/bp']:7.2f} {r['ipc_par/bp']:7.2f} "
                      f"{r['ipc_par/ipc_seq']:7.2f} | {r['smms']['bp']}/{r['smms']['ipc']}", flush=True)
    command = " ".join(["python", "scripts/bench_parallel.py", *(argv if argv is not None else sys.argv[1:])])
    report = {
        "command": command, "quick": args.quick, "cpu": cpu, "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "repeats": args.repeats, "warmup": args.warmup, "lr": args.lr,
        "inference_lr": args.inference_lr, "paths": PATHS, "rows": rows,
        "note": "ratios are medians of interleaved repeats; one iPC step = one evaluation + weight and value update",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    heatmap(rows, args.png, f"{command}\ntorch {torch.__version__}, {cpu['threads']} threads")
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
