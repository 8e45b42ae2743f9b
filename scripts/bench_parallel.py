#!/usr/bin/env python
"""Wall time of ONE weight update of an equal-width MLP: BP vs sequential iPC vs layer-parallel iPC (SPEC.md section 3,
the paper's Fig. 6), measured side by side in one process.

    python scripts/bench_parallel.py --quick                     # tiny grid, seconds: checks that everything runs
    python scripts/bench_parallel.py                             # depth {2..32} x width {64,256,1024} x batch {1,16,128}
    python scripts/bench_parallel.py --depths 8 32 --widths 1024 --batches 1 --repeats 11
    python scripts/bench_parallel.py --device cuda --json out/gpu.json --png out/gpu.png   # the grid on a GPU
    python scripts/bench_parallel.py --compile --depths 32 --widths 64 1024 --batches 1   # compiled, every path
    python scripts/bench_parallel.py --fused                     # closed form (train.fused), every path

Paths, on the same initial weights (width W in, W hidden units per layer, `depth` hidden layers, 10 classes):
  bp       `train_batch` with BP on `pclm.vision.MLP`: feedforward + backprop + one SGD step.
  ipc_seq  one iPC step on `MLP` (a Python loop over layers): one evaluation of the energy with existing value
           nodes, one backward, one SGD step of the weights and one of the value nodes, i.e. one iteration of
           `train_batch`'s loop at t >= 1 (the steady state; the batch's feedforward initialisation is not timed).
  ipc_par  the same iPC step on `pclm.vision.StackedMLP`: hidden layers as one batched matmul.
Timing: every path warmed up, repeats interleaved (order alternating), medians compared (minima also stored,
since other loads on a shared machine inflate single samples). Denormals flushed, as in training.
Writes JSON (with the command line and the Table 4 SMM counts) and a heatmap PNG of the ratios.

--device cuda: models and batches on the GPU (fp32, PyTorch's default matmul precision), torch.cuda.synchronize()
before every reading of the clock; more repeats by default (steps take milliseconds), default outputs
reports/bench_parallel_cuda.{json,png} so the CPU report is kept, and a --max-seconds budget (default 150 s on
cuda): the grid stops after the cell that crosses it. The JSON is rewritten after every cell ("complete": false
until the end), so a killed run keeps what it measured; the PNG is drawn at the end (skipped without matplotlib).

--cuda-graphs (with --device cuda only): removes the launch and Python overhead from EVERY path alike. Each path's
one weight update is a capturable step (`bp_graph_step`, `ipc_graph_step`: the same maths as above, but no host
sync, no Python branch on tensor values, static inputs and value nodes, SGD as in-place foreach adds, gradients
zeroed in place), warmed up on a side stream, captured once with `torch.cuda.graph`, and timed by replaying the
graph (same barriers as the eager cuda path). What remains is the chain of dependent kernels: O(L) for BP, O(1)
for layer-parallel iPC. No energy check inside the graph: parameters and value nodes are checked for finiteness
once after the timing. Default outputs reports/bench_parallel_cuda_graphs.{json,png}.
Status: BP's replay was verified equal to its eager steps on an H200 (torch 2.11). iPC's replay (ipc_seq and
ipc_par) FAILED that check on the H200 (parameters after replays differed from eager steps), also after the fix
that frees each step's autograd graph; the cause is not confirmed (capturing on the warm-up stream is an untested
guess). So every captured path is now verified before it is timed, in every cell: on deep copies of the model and
batch (value nodes made from them), the warm-up plus 3 eager steps against the same warm-up plus 3 graph replays,
all parameters and value nodes compared (rtol 1e-4, atol 1e-5). A path that disagrees is NOT timed: the JSON row
records "graph_check": "failed" with its max abs difference (passing paths: "passed" and theirs), its times and
every ratio with it are null, the table prints "invalid" and the heatmap leaves those cells blank.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

CLASSES = 10
ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731
NO_NODES = lambda name: None  # noqa: E731  (BP: the output node only, as train_batch builds for it)
PATHS = ("bp", "ipc_seq", "ipc_par")


DEFAULTS = {"cpu": {"repeats": 7, "warmup": 2, "max_seconds": None},  # max_seconds None: no budget
            "cuda": {"repeats": 25, "warmup": 5, "max_seconds": 150.0}}


def make_batch(width: int, batch: int, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)  # the same data on every device
    return {"pixel_values": torch.randn(batch, width, generator=g).to(device),
            "labels": torch.randint(0, CLASSES, (batch,), generator=g).to(device)}


def bp_step(model: MLP, batch: dict, lr: float, compile: bool = False) -> Callable[[], None]:
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    compiled = CompiledEnergy(model) if compile else None
    return lambda: train_batch(model, batch, BP(), optim, ALL_GAUSSIAN, compiled=compiled)


def ipc_step(model: torch.nn.Module, batch: dict, lr: float, inference_lr: float,
             compile: bool = False) -> Callable[[], None]:
    """One steady-state iPC step: the body of `train_batch`'s loop at t >= 1, on value nodes initialised once.
    `compile`: the gradients come from `CompiledEnergy` (train.compile), as in `train_batch`."""
    compiled = CompiledEnergy(model) if compile else None
    graph = EnergyGraph(ALL_GAUSSIAN, batch["labels"].shape[0])
    with torch.no_grad():
        model(**batch, nodes=graph)  # feedforward initialisation of the value nodes (not timed)
    optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
    optim_x = torch.optim.SGD(graph.values(), lr=inference_lr)
    algorithm = IPC(2, inference_lr)

    def step() -> None:
        learn = algorithm.learning_groups(1, len(optim_w.param_groups))
        value, _ = evaluate_energy(model, batch, graph, learn, compiled=compiled)  # as train_batch evaluates
        if not math.isfinite(value):
            raise RuntimeError("energy diverged; lower --lr / --inference-lr")
        graph.scale_value_grads()
        if learn:
            optim_w.step()
        optim_w.zero_grad(set_to_none=True)
        if algorithm.updates_x(1):
            optim_x.step()
        optim_x.zero_grad(set_to_none=True)

    return step


def fused_bp_step(model: MLP, batch: dict, lr: float) -> Callable[[], None]:
    """`bp_step` in closed form (train.fused, `FusedMLP`): the same update without autograd."""
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    engine = FusedMLP(model, optim)
    return lambda: train_batch(model, batch, BP(), optim, NO_NODES, fused=engine)


def fused_ipc_step(model: torch.nn.Module, batch: dict, lr: float, inference_lr: float) -> Callable[[], None]:
    """`ipc_step` in closed form (train.fused, `FusedMLP`): one steady-state iPC step, evaluation t = 1 of a batch
    whose value nodes were initialised (and whose fresh t = 0 step ran) once, untimed. The batch has T = 3, so t = 1
    is not its last evaluation (after which FusedMLP leaves the value nodes unmoved)."""
    optim = torch.optim.SGD(weight_groups(model), lr=lr)
    engine, algorithm = FusedMLP(model, optim), IPC(3, inference_lr)
    state = engine.begin(batch, algorithm)
    direct = optimizer_kernel(optim)
    with torch.no_grad():
        engine.step(state, 0, algorithm, optim, direct)

    def step() -> None:
        with torch.no_grad():  # as train_batch runs it
            engine.step(state, 1, algorithm, optim, direct)

    return step


def _sgd_(params: list[torch.Tensor], lr: float) -> None:
    """Plain SGD (no momentum, no weight decay) in place, then the gradients zeroed in place: no CPU-side state, so
    it can be captured in a CUDA graph. The same arithmetic as torch.optim.SGD's step (p += -lr * grad)."""
    grads = [p.grad for p in params]
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)
        torch._foreach_zero_(grads)


def bp_graph_step(model: MLP, batch: dict, lr: float) -> Callable[[], None]:
    """`bp_step` without host syncs (capturable): feedforward, cross-entropy energy (the BP loss, summed / batch
    size, as `train_batch` with BP), backward, SGD on the weights. Gradients persist, zeroed in place."""
    params = [p for p in model.parameters() if p.requires_grad]
    batch_size = batch["labels"].shape[0]

    def step() -> None:
        graph = EnergyGraph(NO_NODES, batch_size)
        model(**batch, nodes=graph)
        graph.energy().backward()
        _sgd_(params, lr)

    return step


def ipc_graph_step(model: torch.nn.Module, batch: dict, lr: float, inference_lr: float) -> Callable[[], None]:
    """`ipc_step` without host syncs (capturable): no energy read, SGD on the weights and on the (static) value
    nodes as in-place foreach adds. `step.values` are the value nodes, for the finiteness check after timing."""
    graph = EnergyGraph(ALL_GAUSSIAN, batch["labels"].shape[0])
    with torch.no_grad():
        model(**batch, nodes=graph)  # feedforward initialisation of the value nodes (not timed)
    params = [p for p in model.parameters() if p.requires_grad]
    values = graph.values()

    def step() -> None:
        model(**batch, nodes=graph)
        graph.energy().backward()
        # drop this step's autograd graph: kept alive, it keeps the leaves' AccumulateGrad nodes, which then carry
        # the stream of an earlier step (the warm-up's side stream) into the capture. On an H200 (torch 2.11) that
        # gave a stream-mismatch warning and graph replays that did NOT reproduce the eager updates.
        graph.node_energies.clear()
        graph.scale_value_grads()
        _sgd_(params, lr)
        _sgd_(values, inference_lr)

    step.values, step.graph = values, graph
    return step


def capture(step: Callable[[], None], warmup: int = 3) -> Callable[[], None]:
    """`step` captured once in a CUDA graph, after `warmup` eager calls on a side stream (PyTorch's "whole network
    capture" recipe); returns the graph's replay. The capture runs on that same side stream (not on
    torch.cuda.graph's own capture stream), so that nothing made during the warm-up (e.g. an AccumulateGrad node
    kept alive from a warm-up step, which carries the stream it was created on) refers to a stream outside the
    capture. NOT verified on a GPU to change anything: `check_replay` is what guards the timings."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        step()
    torch.cuda.synchronize()
    return graph.replay


GRAPH_CHECK = {"steps": 3, "rtol": 1e-4, "atol": 1e-5}  # fp32 on a GPU: far below one update of lr 1e-4 would move


def compare_steps(eager: Callable[[], None], eager_state: list[torch.Tensor], replay: Callable[[], None],
                  replay_state: list[torch.Tensor], steps: int = GRAPH_CHECK["steps"],
                  rtol: float = GRAPH_CHECK["rtol"], atol: float = GRAPH_CHECK["atol"],
                  sync: Callable[[], None] | None = None) -> dict:
    """Run `steps` calls of `eager` and of `replay`, which must start from equal states, and compare the tensors they
    update (`eager_state[i]` against `replay_state[i]`: parameters, and value nodes for iPC) with allclose(rtol,
    atol). Returns {"graph_check": "passed" | "failed", "max_abs_diff": float (None if not finite), ...}."""
    for _ in range(steps):
        eager()
    for _ in range(steps):
        replay()
    if sync is not None:
        sync()
    same = len(eager_state) == len(replay_state) and all(
        a.shape == b.shape for a, b in zip(eager_state, replay_state))
    diff = math.inf
    if same:
        with torch.no_grad():
            diffs = [float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
                     for a, b in zip(eager_state, replay_state)]
            diff = max(diffs, default=0.0)
            diff = diff if diff == diff else math.inf  # NaN: as bad as it gets
            same = all(torch.allclose(b, a, rtol=rtol, atol=atol) for a, b in zip(eager_state, replay_state))
    return {"graph_check": "passed" if same else "failed", "max_abs_diff": diff if math.isfinite(diff) else None,
            "steps": steps, "rtol": rtol, "atol": atol}


def _state(model: torch.nn.Module, step: Callable[[], None]) -> list[torch.Tensor]:
    """What a step updates: the model's trainable parameters, then the value nodes (iPC steps only)."""
    return [*(p for p in model.parameters() if p.requires_grad), *getattr(step, "values", [])]


def captured_and_checked(make: Callable[[torch.nn.Module, dict], Callable[[], None]], model: torch.nn.Module,
                         batch: dict, warmup: int = 3, sync: Callable[[], None] | None = None,
                         ) -> tuple[Callable[[], None], Callable[[], None], dict]:
    """Capture `make(model, batch)` (module-level `capture`, `warmup` eager warm-up calls) and check the graph before
    anyone times it: a deep copy of the model and batch, taken first, runs the same step eagerly for the warm-up and
    `GRAPH_CHECK["steps"]` more calls, the graph is replayed as often, and the parameters and value nodes must agree
    (`compare_steps`). Returns (replay, the captured model's step, the check); time the replay only if the check
    says "passed". The replays leave `model` `warmup + steps` updates on (as any warm-up would)."""
    reference, ref_batch = copy.deepcopy(model), {k: v.clone() for k, v in batch.items()}
    ref_step, step = make(reference, ref_batch), make(model, batch)  # value nodes from equal models and batches
    for _ in range(warmup):  # what `capture` does eagerly before capturing
        ref_step()
    replay = capture(step, warmup)
    check = compare_steps(ref_step, _state(reference, ref_step), replay, _state(model, step), sync=sync)
    return replay, step, check


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _all_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def bench_one(depth: int, width: int, batch_size: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    on_device = nullcontext() if args.device == "cpu" else torch.device(args.device)  # parameters made there
    with on_device:
        mlp = MLP(in_features=width, width=width, depth=depth + 1, classes=CLASSES)  # depth hidden layers
        stacked = StackedMLP.from_mlp(mlp)
        seq = copy.deepcopy(mlp)
    batch = make_batch(width, batch_size, device=args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    checks: dict[str, dict] = {}
    if args.cuda_graphs:
        makers = {"bp": (mlp, lambda m, b: bp_graph_step(m, b, args.lr)),
                  "ipc_seq": (seq, lambda m, b: ipc_graph_step(m, b, args.lr, args.inference_lr)),
                  "ipc_par": (stacked, lambda m, b: ipc_graph_step(m, b, args.lr, args.inference_lr))}
        steps, timed_state = {}, []
        for name, (model, make) in makers.items():  # every graph checked against eager steps before it is timed
            replay, step, checks[name] = captured_and_checked(make, model, batch, sync=sync)
            if checks[name]["graph_check"] == "passed":
                steps[name] = replay
                timed_state += _state(model, step)
    elif args.fused:
        steps = {"bp": fused_bp_step(mlp, batch, args.lr),
                 "ipc_seq": fused_ipc_step(seq, batch, args.lr, args.inference_lr),
                 "ipc_par": fused_ipc_step(stacked, batch, args.lr, args.inference_lr),
                 "bp_eager": bp_step(copy.deepcopy(mlp), batch, args.lr)}  # autograd's BP in the same race
    else:
        steps = {"bp": bp_step(mlp, batch, args.lr, args.compile),
                 "ipc_seq": ipc_step(seq, batch, args.lr, args.inference_lr, args.compile),
                 "ipc_par": ipc_step(stacked, batch, args.lr, args.inference_lr, args.compile)}
        if args.compile:  # the fastest BP may be the eager one: time it in the same race
            steps["bp_eager"] = bp_step(copy.deepcopy(mlp), batch, args.lr)
    times = race(steps, args.repeats, args.warmup, sync=sync) if steps else {}
    if args.cuda_graphs and not _all_finite(timed_state):  # no energy check inside the graphs: check, untimed
        raise RuntimeError("non-finite parameters or value nodes after the graph replays; lower --lr / "
                           "--inference-lr")
    med = {k: statistics.median(times[k]) if k in times else None for k in PATHS}  # None: not timed (check failed)
    low = {k: min(times[k]) if k in times else None for k in PATHS}
    L = depth + 1  # weight layers
    row = {
        "depth": depth, "width": width, "batch": batch_size, "weight_layers": L,
        "median_s": med, "min_s": low,
        "ipc_seq/bp": _ratio(med["ipc_seq"], med["bp"]), "ipc_par/bp": _ratio(med["ipc_par"], med["bp"]),
        "ipc_par/ipc_seq": _ratio(med["ipc_par"], med["ipc_seq"]),
        "min ipc_par/bp": _ratio(low["ipc_par"], low["bp"]),
        "smms": {"bp": BP().cost(L).smms, "ipc": IPC(L + 1, args.inference_lr).cost(L).smms},
    }
    if "bp_eager" in times:
        row["bp_eager_median_s"] = statistics.median(times["bp_eager"])
        row["ipc_par/bp_eager"] = _ratio(med["ipc_par"], row["bp_eager_median_s"])
    if args.cuda_graphs:
        row["graph_check"] = checks  # per path: {"graph_check": "passed" | "failed", "max_abs_diff": ...}
        row["invalid"] = [k for k in PATHS if checks[k]["graph_check"] != "passed"]
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
    fig, axes = plt.subplots(len(keys), len(batches), figsize=(3.2 * len(batches) + 1, 2.6 * len(keys) + 0.6),
                             squeeze=False, layout="constrained")
    norm = LogNorm(vmin=1 / 8, vmax=8)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")  # masked (NaN) cells stay blank
    for i, key in enumerate(keys):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            grid = torch.full((len(depths), len(widths)), float("nan"))  # NaN: not measured, or not valid
            invalid = set()
            for r in rows:
                if r["batch"] == b:
                    cell = depths.index(r["depth"]), widths.index(r["width"])
                    if r[key] is None:  # a path of this ratio failed its CUDA-graph check: left blank
                        invalid.add(cell)
                    else:
                        grid[cell] = r[key]
            im = ax.imshow(grid.numpy(), cmap=cmap, norm=norm, origin="lower", aspect="auto")
            for (y, x), v in zip(((y, x) for y in range(len(depths)) for x in range(len(widths))), grid.flatten()):
                if v == v:
                    ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
                elif (y, x) in invalid:
                    ax.text(x, y, "invalid", ha="center", va="center", fontsize=7, color="0.4")
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
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where models and batches live (cuda: exit 2 if CUDA is not available)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --device cuda only: capture each path's weight update in a CUDA graph and time its "
                        "replay (default outputs reports/bench_parallel_cuda_graphs.{json,png})")
    p.add_argument("--compile", action="store_true",
                   help="every path gets its gradients through torch.compile (pclm.training.compiled, train.compile); "
                        "each cell compiles 3 functions first, so use a small grid")
    p.add_argument("--fused", action="store_true",
                   help="every path in closed form (train.fused, pclm.vision.FusedMLP: no autograd, the optimiser's "
                        "kernel called directly), plus autograd's BP step in the same race")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per path (default 7 on cpu, 25 on cuda)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per path (default 2 on cpu, 5 on cuda)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop the grid after the cell that crosses this total time (default: none on cpu, "
                        "150 on cuda; 0: none)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--inference-lr", type=float, default=0.1)
    p.add_argument("--threads", default="auto", help="intra-op threads ('auto': every core, as in training; "
                                                     "on cuda only an explicit number is applied)")
    p.add_argument("--quick", action="store_true", help="tiny grid (depth {2,8} x width {32,128} x batch {1,16}), "
                                                        "3 repeats: checks that it runs, not a measurement")
    p.add_argument("--json", type=Path, default=None,
                   help="default reports/bench_parallel.json (cpu), reports/bench_parallel_cuda.json (cuda)")
    p.add_argument("--png", type=Path, default=None,
                   help="default reports/bench_parallel.png (cpu), reports/bench_parallel_cuda.png (cuda)")
    args = p.parse_args(argv)
    suffix = (("" if args.device == "cpu" else f"_{args.device}") + ("_graphs" if args.cuda_graphs else "")
              + ("_compiled" if args.compile else "") + ("_fused" if args.fused else ""))
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

import torch  # noqa: E402

from pclm.algorithms import BP, IPC  # noqa: E402
from pclm.benchmarking import race  # noqa: E402
from pclm.cpu import configure_cpu  # noqa: E402
from pclm.pc import EnergyGraph, gaussian  # noqa: E402
from pclm.training.compiled import CompiledEnergy  # noqa: E402
from pclm.training.step import evaluate_energy, train_batch, weight_groups  # noqa: E402
from pclm.vision import MLP, FusedMLP, StackedMLP  # noqa: E402
from pclm.vision.fused_mlp import optimizer_kernel  # noqa: E402


def setup_device(args: argparse.Namespace) -> tuple[dict, str]:
    """CPU hygiene (cpu) or the GPU's identity (cuda). Returns (what was applied, the device's name)."""
    if args.device == "cpu":
        cpu = configure_cpu(args.threads if args.threads == "auto" else int(args.threads))
        return cpu, platform.processor() or platform.machine()
    if args.threads != "auto":
        torch.set_num_threads(int(args.threads))
    applied = {"flush_denormal": torch.set_flush_denormal(True),  # host-side only: harmless on cuda
               "threads": torch.get_num_threads(),
               "float32_matmul_precision": torch.get_float32_matmul_precision(),
               "cuda": torch.version.cuda}
    return applied, torch.cuda.get_device_name()


def write_json(path: Path, report: dict) -> None:
    """Replace `path` atomically, so that a run killed mid-write leaves the previous cell's report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compile + args.cuda_graphs + args.fused > 1:
        print("error: --compile, --cuda-graphs and --fused are separate modes; choose one", file=sys.stderr)
        return 2
    if args.cuda_graphs and args.device != "cuda":
        print(f"error: --cuda-graphs needs --device cuda (got --device {args.device})", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: --device cuda, but CUDA is not available to this torch {torch.__version__} "
              f"(built for CUDA {torch.version.cuda})", file=sys.stderr)
        return 2
    start = time.perf_counter()
    cpu, device_name = setup_device(args)
    command = " ".join(["python", "scripts/bench_parallel.py", *(argv if argv is not None else sys.argv[1:])])
    cells = len(args.depths) * len(args.widths) * len(args.batches)
    budget = args.max_seconds or None
    graphs = (", CUDA graphs" if args.cuda_graphs else "") + (", torch.compile" if args.compile else "")
    print(f"{command}\ndevice {args.device} ({device_name}){graphs}, torch {torch.__version__}, applied: {cpu}\n"
          f"{cells} cells, {args.repeats} repeats after {args.warmup} warm-up calls per path, "
          f"budget {f'{budget:g} s' if budget else 'none'}; writing {args.json} after every cell", flush=True)
    print(f"{'hidden':>6} {'width':>6} {'batch':>6} | {'bp ms':>8} {'ipc_seq':>8} {'ipc_par':>8} | "
          f"{'seq/bp':>7} {'par/bp':>7} {'par/seq':>7} | SMMs bp/ipc | elapsed s", flush=True)
    rows: list[dict] = []
    report = {
        "command": command, "quick": args.quick, "device": args.device, "device_name": device_name,
        "cuda_graphs": args.cuda_graphs, "compiled": args.compile, "fused": args.fused,
        "cpu": cpu, "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "repeats": args.repeats, "warmup": args.warmup, "lr": args.lr,
        "inference_lr": args.inference_lr, "max_seconds": budget, "paths": PATHS, "rows": rows,
        "cells_planned": cells, "complete": False, "stopped_by_budget": False,
        "note": "ratios are medians of interleaved repeats; one iPC step = one evaluation + weight and value update",
    }
    if args.cuda_graphs:
        report["graph_check"] = {**GRAPH_CHECK, "how": (
            "per cell and path, before timing: a deep copy runs the warm-up plus `steps` eager steps, the graph "
            "copy the same warm-up then `steps` replays; parameters (and value nodes) compared with allclose(rtol, "
            "atol). A path that fails is not timed: its median_s/min_s and every ratio with it are null")}
    grid = [(d, w, b) for d in args.depths for w in args.widths for b in args.batches]
    for i, (depth, width, batch) in enumerate(grid):
        r = bench_one(depth, width, batch, args)
        rows.append(r)
        elapsed = time.perf_counter() - start
        report["elapsed_s"] = round(elapsed, 3)
        m = r["median_s"]
        ms = " ".join("invalid".rjust(8) if m[k] is None else f"{m[k] * 1e3:8.3f}" for k in PATHS)
        ratios = " ".join("-".rjust(7) if r[k] is None else f"{r[k]:7.2f}"
                          for k in ("ipc_seq/bp", "ipc_par/bp", "ipc_par/ipc_seq"))
        print(f"{depth:6d} {width:6d} {batch:6d} | {ms} | {ratios} | {r['smms']['bp']}/{r['smms']['ipc']} | "
              f"{elapsed:.1f}", flush=True)
        if "bp_eager_median_s" in r:
            mode = "fused" if args.fused else "compiled"
            print(f"  eager bp {r['bp_eager_median_s'] * 1e3:.3f} ms: {mode} ipc_par / eager bp = "
                  f"{r['ipc_par/bp_eager']:.2f}", flush=True)
        for k in r.get("invalid", []):
            diff = r["graph_check"][k]["max_abs_diff"]
            print(f"  {k}: CUDA graph replay disagrees with eager steps (max abs diff "
                  f"{'non-finite' if diff is None else f'{diff:.3g}'}): not timed", flush=True)
        if budget is not None and elapsed > budget and i + 1 < len(grid):
            report["stopped_by_budget"] = True
            print(f"budget of {budget:g} s spent after {i + 1}/{cells} cells: stopping", flush=True)
            break
        write_json(args.json, report)
    report["complete"] = len(rows) == cells
    write_json(args.json, report)
    threads = f"{cpu['threads']} threads" if args.device == "cpu" else device_name
    threads += ", CUDA graphs (replay)" if args.cuda_graphs else ""
    threads += ", torch.compile" if args.compile else ""
    try:
        heatmap(rows, args.png, f"{command}\ntorch {torch.__version__}, {threads}")
    except ImportError as e:  # a GPU machine without matplotlib: the JSON holds every number
        print(f"no heatmap ({e}); wrote {args.json}")
        return 0
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
