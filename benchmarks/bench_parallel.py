#!/usr/bin/env python
"""Wall time of ONE weight update of an equal-width MLP: BP vs sequential iPC vs layer-parallel iPC (SPEC.md section 3,
the paper's Fig. 6), measured side by side in one process.

    python benchmarks/bench_parallel.py --quick                     # tiny grid, seconds: checks that everything runs
    python benchmarks/bench_parallel.py                             # depth {2..32} x width {64,256,1024} x batch {1,16,128}
    python benchmarks/bench_parallel.py --depths 8 32 --widths 1024 --batches 1 --repeats 11
    python benchmarks/bench_parallel.py --device cuda --json out/gpu.json --png out/gpu.png   # the grid on a GPU
    python benchmarks/bench_parallel.py --backend compiled --depths 32 --widths 64 1024 --batches 1  # torch.compile
    python benchmarks/bench_parallel.py --backend closed_form       # every path in closed form (ClosedFormMLP)

Paths, on the same initial weights (width W in, W hidden units per layer, `depth` hidden layers, 10 classes):
  bp       `train_batch` with BP on `pclm.vision.MLP`: feedforward + backprop + one SGD step.
  ipc_seq  one iPC step on `MLP` (a Python loop over layers): one evaluation of the energy with existing value
           nodes, one backward, one SGD step of the weights and one of the value nodes, i.e. one iteration of
           `train_batch`'s loop at t >= 1 (the steady state; the batch's feedforward initialisation is not timed).
  ipc_par  the same iPC step on `pclm.vision.StackedMLP`: hidden layers as one batched matmul.
--backend (train.backend) is where every path's gradients come from; with compiled or closed_form, autograd's BP step
runs in the same race too (`bp_eager`: the fastest BP may be that one).
Timing: every path warmed up, repeats interleaved (order alternating), medians compared (minima also stored,
since other loads on a shared machine inflate single samples). Denormals flushed, as in training.
Writes JSON (with the command line and the Table 4 SMM counts) and a heatmap PNG of the ratios.

--device cuda: models and batches on the GPU (fp32, PyTorch's default matmul precision), torch.cuda.synchronize()
before every reading of the clock; more repeats by default (steps take milliseconds), default outputs
reports/bench_parallel_cuda.{json,png} so the CPU report is kept, and a --max-seconds budget (default 150 s on
cuda): the grid stops after the cell that crosses it. The JSON is rewritten after every cell ("complete": false
until the end), so a killed run keeps what it measured; the PNG is drawn at the end (skipped without matplotlib).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from pclm.config import VISION_BACKENDS
from pclm.errors import ArgumentParser

CLASSES = 10
ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731
PATHS = ("bp", "ipc_seq", "ipc_par")


DEFAULTS = {
    "cpu": {"repeats": 7, "warmup": 2, "max_seconds": None},  # max_seconds None: no budget
    "cuda": {"repeats": 25, "warmup": 5, "max_seconds": 150.0},
}
SUFFIX = {"autograd": "", "compiled": "_compiled", "closed_form": "_fused"}  # the committed reports' names


def make_batch(width: int, batch: int, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)  # the same data on every device
    return {
        "pixel_values": torch.randn(batch, width, generator=g).to(device),
        "labels": torch.randint(0, CLASSES, (batch,), generator=g).to(device),
    }


def bp_step(model: MLP, batch: dict, lr: float, backend: str = "autograd") -> Callable[[], None]:
    """One BP step, `train_batch` with gradients from `backend` (train.backend)."""
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    gradients = build_backend(backend, model, optim, ALL_GAUSSIAN)
    return lambda: train_batch(model, batch, BP(), optim, gradients)


def ipc_step(
    model: torch.nn.Module, batch: dict, lr: float, inference_lr: float, backend: str = "autograd"
) -> Callable[[], None]:
    """One steady-state iPC step: `BatchRun.step(1)` (the schedule `train_batch` runs) on value nodes initialised,
    and stepped at t = 0, once, untimed. T = 3, so t = 1 is not the batch's last evaluation and x moves.
    `backend`: where the gradients come from, as in `train_batch` (train.backend)."""
    optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
    algorithm = IPC(3, inference_lr)
    gradients = build_backend(backend, model, optim_w, ALL_GAUSSIAN).begin(model, batch, algorithm)
    run = BatchRun(gradients, algorithm, optim_w)
    run.step(0)
    return lambda: run.step(1)


def bench_one(depth: int, width: int, batch_size: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    on_device = nullcontext() if args.device == "cpu" else torch.device(args.device)  # parameters made there
    with on_device:
        mlp = MLP(in_features=width, width=width, depth=depth + 1, classes=CLASSES)  # depth hidden layers
        stacked = StackedMLP.from_mlp(mlp)
        seq = copy.deepcopy(mlp)
    batch = make_batch(width, batch_size, device=args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    steps = {
        "bp": bp_step(mlp, batch, args.lr, args.backend),
        "ipc_seq": ipc_step(seq, batch, args.lr, args.inference_lr, args.backend),
        "ipc_par": ipc_step(stacked, batch, args.lr, args.inference_lr, args.backend),
    }
    if args.backend != "autograd":
        steps["bp_eager"] = bp_step(copy.deepcopy(mlp), batch, args.lr)
    times = race(steps, args.repeats, args.warmup, sync=sync)
    med = {k: statistics.median(times[k]) for k in PATHS}
    low = {k: min(times[k]) for k in PATHS}
    L = depth + 1  # weight layers
    row = {
        "depth": depth,
        "width": width,
        "batch": batch_size,
        "weight_layers": L,
        "median_s": med,
        "min_s": low,
        "ipc_seq/bp": med["ipc_seq"] / med["bp"],
        "ipc_par/bp": med["ipc_par"] / med["bp"],
        "ipc_par/ipc_seq": med["ipc_par"] / med["ipc_seq"],
        "min ipc_par/bp": low["ipc_par"] / low["bp"],
        "smms": {"bp": BP().cost(L).smms, "ipc": IPC(L + 1, args.inference_lr).cost(L).smms},
    }
    if "bp_eager" in times:
        row["bp_eager_median_s"] = statistics.median(times["bp_eager"])
        row["ipc_par/bp_eager"] = med["ipc_par"] / row["bp_eager_median_s"]
    return row


def heatmap(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    depths = sorted({r["depth"] for r in rows})
    widths = sorted({r["width"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    keys = ("ipc_par/bp", "ipc_seq/bp", "ipc_par/ipc_seq")
    fig, axes = plt.subplots(
        len(keys),
        len(batches),
        figsize=(3.2 * len(batches) + 1, 2.6 * len(keys) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    norm = LogNorm(vmin=1 / 8, vmax=8)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")  # masked (NaN) cells stay blank
    for i, key in enumerate(keys):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            grid = torch.full((len(depths), len(widths)), float("nan"))  # NaN: not measured
            for r in rows:
                if r["batch"] == b:
                    grid[depths.index(r["depth"]), widths.index(r["width"])] = r[key]
            im = ax.imshow(grid.numpy(), cmap=cmap, norm=norm, origin="lower", aspect="auto")
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
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="hidden layers")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 128])
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where models and batches live (cuda: exit 2 if CUDA is not available)",
    )
    p.add_argument(
        "--backend",
        choices=VISION_BACKENDS,
        default="autograd",
        help="where every path's gradients come from (train.backend; compiled: each cell compiles 3 functions "
        "first, so use a small grid; closed_form: pclm.vision.ClosedFormMLP, no autograd)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed calls per path (default 7 on cpu, 25 on cuda)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per path (default 2 on cpu, 5 on cuda)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop the grid after the cell that crosses this total time (default: none on cpu, 150 on cuda; 0: none)",
    )
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--inference-lr", type=float, default=0.1)
    p.add_argument(
        "--threads",
        default="auto",
        help="intra-op threads ('auto': every core, as in training; on cuda only an explicit number is applied)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny grid (depth {2,8} x width {32,128} x batch {1,16}), "
        "3 repeats: checks that it runs, not a measurement",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default reports/bench_parallel.json (cpu), reports/bench_parallel_cuda.json (cuda)",
    )
    p.add_argument(
        "--png",
        type=Path,
        default=None,
        help="default reports/bench_parallel.png (cpu), reports/bench_parallel_cuda.png (cuda)",
    )
    args = p.parse_args(argv)
    suffix = ("" if args.device == "cpu" else f"_{args.device}") + SUFFIX[args.backend]
    args.json = args.json or Path(f"reports/bench_parallel{suffix}.json")
    args.png = args.png or Path(f"reports/bench_parallel{suffix}.png")
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.depths, args.widths, args.batches, args.repeats, args.warmup = [2, 8], [32, 128], [1, 16], 3, 1
    return args


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.common when run as a file

import torch  # noqa: E402

from benchmarks.common import command_line, cpu_name, race, write_json  # noqa: E402
from pclm.algorithms import BP, IPC  # noqa: E402
from pclm.cpu import configure_cpu  # noqa: E402
from pclm.pc import gaussian  # noqa: E402
from pclm.training.backends import build_backend  # noqa: E402
from pclm.training.step import BatchRun, train_batch, weight_groups  # noqa: E402
from pclm.vision import MLP, StackedMLP  # noqa: E402


def setup_device(args: argparse.Namespace) -> tuple[dict, str]:
    """CPU hygiene (cpu) or the GPU's identity (cuda). Returns (what was applied, the device's name)."""
    if args.device == "cpu":
        cpu = configure_cpu(args.threads if args.threads == "auto" else int(args.threads))
        return cpu, cpu_name()
    if args.threads != "auto":
        torch.set_num_threads(int(args.threads))
    applied = {
        "flush_denormal": torch.set_flush_denormal(True),  # host-side only: harmless on cuda
        "threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda": torch.version.cuda,
    }
    return applied, torch.cuda.get_device_name()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"error: --device cuda, but CUDA is not available to this torch {torch.__version__} "
            f"(built for CUDA {torch.version.cuda})",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    cpu, device_name = setup_device(args)
    command = command_line("bench_parallel.py", argv)
    cells = len(args.depths) * len(args.widths) * len(args.batches)
    budget = args.max_seconds or None
    mode = f", train.backend={args.backend}"
    print(
        f"{command}\ndevice {args.device} ({device_name}){mode}, torch {torch.__version__}, applied: {cpu}\n"
        f"{cells} cells, {args.repeats} repeats after {args.warmup} warm-up calls per path, "
        f"budget {f'{budget:g} s' if budget else 'none'}; writing {args.json} after every cell",
        flush=True,
    )
    print(
        f"{'hidden':>6} {'width':>6} {'batch':>6} | {'bp ms':>8} {'ipc_seq':>8} {'ipc_par':>8} | "
        f"{'seq/bp':>7} {'par/bp':>7} {'par/seq':>7} | SMMs bp/ipc | elapsed s",
        flush=True,
    )
    rows: list[dict] = []
    report = {
        "command": command,
        "quick": args.quick,
        "device": args.device,
        "device_name": device_name,
        "backend": args.backend,
        "cpu": cpu,
        "torch": torch.__version__,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "lr": args.lr,
        "inference_lr": args.inference_lr,
        "max_seconds": budget,
        "paths": PATHS,
        "rows": rows,
        "cells_planned": cells,
        "complete": False,
        "stopped_by_budget": False,
        "note": "ratios are medians of interleaved repeats; one iPC step = one evaluation + weight and value update",
    }
    grid = [(d, w, b) for d in args.depths for w in args.widths for b in args.batches]
    for i, (depth, width, batch) in enumerate(grid):
        r = bench_one(depth, width, batch, args)
        rows.append(r)
        elapsed = time.perf_counter() - start
        report["elapsed_s"] = round(elapsed, 3)
        m = r["median_s"]
        ms = " ".join(f"{m[k] * 1e3:8.3f}" for k in PATHS)
        ratios = " ".join(f"{r[k]:7.2f}" for k in ("ipc_seq/bp", "ipc_par/bp", "ipc_par/ipc_seq"))
        print(
            f"{depth:6d} {width:6d} {batch:6d} | {ms} | {ratios} | {r['smms']['bp']}/{r['smms']['ipc']} | "
            f"{elapsed:.1f}",
            flush=True,
        )
        if "bp_eager_median_s" in r:
            print(
                f"  eager bp {r['bp_eager_median_s'] * 1e3:.3f} ms: {args.backend} ipc_par / eager bp = "
                f"{r['ipc_par/bp_eager']:.2f}",
                flush=True,
            )
        if budget is not None and elapsed > budget and i + 1 < len(grid):
            report["stopped_by_budget"] = True
            print(f"budget of {budget:g} s spent after {i + 1}/{cells} cells: stopping", flush=True)
            break
        write_json(args.json, report)
    report["complete"] = len(rows) == cells
    write_json(args.json, report)
    threads = f"{cpu['threads']} threads" if args.device == "cpu" else device_name
    try:
        heatmap(rows, args.png, f"{command}\ntorch {torch.__version__}, {threads}{mode}")
    except ImportError as e:  # a GPU machine without matplotlib: the JSON holds every number
        print(f"no heatmap ({e}); wrote {args.json}")
        return 0
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
