#!/usr/bin/env python
"""Full-batch discriminative efficiency (the iPC paper's Fig. 2 right, SPEC.md section 5): training loss of an MLP
classifier on a fixed set of Fashion-MNIST images, trained full batch with BP, PC, Z-IL and iPC, against cumulative
SMMs (simultaneous matrix multiplications, SPEC.md Table 4) and against wall time.

    python experiments/fullbatch_efficiency/exp_fullbatch.py --data-dir ../shared/data/fashion-mnist            # the committed report
    python experiments/fullbatch_efficiency/exp_fullbatch.py --data-dir ../shared/data/fashion-mnist --quick    # seconds: checks it runs

Every run starts from the same initial weights (seed) and uses plain SGD on the weights at lr alpha.
* BP, PC (T inference steps at gamma, then one learning step) and Z-IL (gamma = 1, layer l learns at step l) call
  `train_batch` once per weight update; PC and Z-IL re-initialise their value nodes by a feedforward pass each time.
* iPC in full-batch mode: one `train_batch` call with T = 1 per iteration on ONE energy graph kept across calls, so
  the value nodes are initialised once (feedforward) and then persist; weights and value nodes move together at every
  step, with no control signal.
SMMs per weight update come from `algorithm.cost(L)` (BP 2L-1, PC 2T, Z-IL 2(L-1)); an iPC iteration is one inference
step, 2 SMMs (`inference_step_cost(L)`). The feedforward initialisations are not counted (as in the paper).
The loss is the feedforward cross-entropy on the training images, evaluated outside the timed region.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from pclm.errors import ArgumentParser

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with the Fashion-MNIST IDX .gz files")
    p.add_argument("--out", default="reports/fullbatch_efficiency", help="output path without extension")
    p.add_argument("--n-images", type=int, default=500)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depths", type=int, nargs="+", default=[3, 4, 6])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 0.05], help="SGD lr alpha of the weights")
    p.add_argument("--inference-lr", type=float, default=0.5, help="gamma")
    p.add_argument("--pc-steps", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--smm-budget", type=int, default=3000)
    p.add_argument("--points", type=int, default=60)
    p.add_argument("--seed", type=int, default=0, help="initial weights")
    p.add_argument("--data-seed", type=int, default=0, help="which training images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--bench",
        type=int,
        default=0,
        metavar="REPEATS",
        help="instead of training curves: median time of one update per algorithm, interleaved repeats, "
        "written to <out>_update_times.json",
    )
    p.add_argument("--quick", action="store_true", help="tiny run: 64 images, width 32, depth 3, 60 SMMs")
    return p


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    build_parser().parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: benchmarks.common when run as a file

import torch  # noqa: E402

from benchmarks.common import race  # noqa: E402
from pclm.algorithms import BP, IPC, PC, Algorithm, build_algorithm  # noqa: E402
from pclm.algorithms.cost import inference_step_cost  # noqa: E402
from pclm.data.vision import load_idx_split  # noqa: E402
from pclm.errors import UsageError  # noqa: E402
from pclm.pc import gaussian  # noqa: E402
from pclm.training.backends import Autograd  # noqa: E402
from pclm.training.step import Diverged, train_batch, weight_groups  # noqa: E402
from pclm.vision import MLP  # noqa: E402


def fashion_subset(data_dir: str | Path, n: int, seed: int) -> dict[str, torch.Tensor]:
    """`n` training images drawn at random (seed) from the Fashion-MNIST training split."""
    x, y = load_idx_split(data_dir, "train")
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return {"pixel_values": x[idx], "labels": y[idx]}


def schedule(name: str, depth: int, inference_steps: int, inference_lr: float) -> tuple[Algorithm, int]:
    """The algorithm for one weight update (for ipc: one iteration) and its SMMs."""
    if name == "ipc":
        return IPC(1, inference_lr), inference_step_cost(depth).smms
    algorithm = {
        "bp": lambda: BP(),
        "pc": lambda: PC(inference_steps, inference_lr),
        "zil": lambda: build_algorithm("zil", 0, 1.0, n_layers=depth),
    }[name]()
    return algorithm, algorithm.cost(depth).smms


def train_curve(
    name: str,
    batch: dict[str, torch.Tensor],
    depth: int,
    width: int,
    lr: float,
    inference_lr: float,
    inference_steps: int,
    smm_budget: int,
    points: int,
    seed: int,
) -> dict:
    """Train one network full batch until `smm_budget` SMMs are spent; the loss at ~`points` evenly spaced SMMs."""
    torch.manual_seed(seed)
    model = MLP(in_features=batch["pixel_values"][0].numel(), width=width, depth=depth, classes=10, act="tanh")
    optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
    algorithm, smms_per_update = schedule(name, depth, inference_steps, inference_lr)
    backend = Autograd(ALL_GAUSSIAN, keep_values=name == "ipc")  # iPC: one energy graph across iterations

    def loss() -> float:
        with torch.no_grad():
            return float(model(**batch).loss)

    curve = {"smms": [0], "seconds": [0.0], "loss": [loss()]}
    smms, seconds, updates, mark, diverged = 0, 0.0, 0, smm_budget / points, False
    while smms < smm_budget:
        t0 = time.perf_counter()
        try:
            train_batch(model, batch, algorithm, optim_w, backend)
        except Diverged:
            diverged = True
        seconds += time.perf_counter() - t0
        smms, updates = smms + smms_per_update, updates + 1
        if diverged or smms >= mark or smms >= smm_budget:
            curve["smms"].append(smms)
            curve["seconds"].append(seconds)
            curve["loss"].append(loss())
            mark = (smms // (smm_budget / points) + 1) * (smm_budget / points)
        if diverged:
            break
    label = f"PC T={inference_steps}" if name == "pc" else {"bp": "BP", "zil": "Z-IL", "ipc": "iPC"}[name]
    return {
        "algorithm": name,
        "label": label,
        "inference_steps": inference_steps if name == "pc" else None,
        "smms_per_update": smms_per_update,
        "updates": updates,
        "diverged": diverged,
        "final_loss": curve["loss"][-1],
        "min_loss": min(curve["loss"]),
        **curve,
    }


def time_updates(
    batch: dict[str, torch.Tensor],
    depth: int,
    width: int,
    lr: float,
    inference_lr: float,
    pc_steps: list[int],
    repeats: int,
    seed: int,
) -> dict[str, float]:
    """Median wall time of one weight update (one iPC iteration) per algorithm, repeats interleaved in one process
    (order alternating), so that other loads on a shared machine hit every algorithm alike."""
    steps = {}
    for name, t in runs_for(depth, pc_steps):
        torch.manual_seed(seed)
        model = MLP(in_features=batch["pixel_values"][0].numel(), width=width, depth=depth, classes=10, act="tanh")
        optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
        algorithm, _ = schedule(name, depth, t, inference_lr)
        backend = Autograd(ALL_GAUSSIAN, keep_values=name == "ipc")
        label = f"PC T={t}" if name == "pc" else {"bp": "BP", "zil": "Z-IL", "ipc": "iPC"}[name]
        steps[label] = lambda m=model, a=algorithm, o=optim_w, g=backend: train_batch(m, batch, a, o, g)
    # warm-up of `depth` calls: iPC reaches its steady state (errors at every layer)
    times = race(steps, repeats, warmup=depth)
    return {k: statistics.median(v) for k, v in times.items()}


def runs_for(depth: int, pc_steps: list[int]) -> list[tuple[str, int]]:
    """(algorithm, T) pairs; PC with T < L - 1 is left out: its errors never reach the first layer (cost() raises)."""
    return [("bp", 0), ("zil", 0), ("ipc", 1)] + [("pc", t) for t in pc_steps if t >= depth - 1]


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({r["lr"] for r in results})
    depths = sorted({r["depth"] for r in results})
    fig, axes = plt.subplots(
        2 * len(lrs), len(depths), figsize=(4.2 * len(depths), 3.2 * 2 * len(lrs)), squeeze=False, layout="constrained"
    )
    for i, lr in enumerate(lrs):
        for j, depth in enumerate(depths):
            for k, xkey in enumerate(("smms", "seconds")):
                ax = axes[2 * i + k][j]
                for r in results:
                    if r["lr"] == lr and r["depth"] == depth:
                        style = "-" if r["algorithm"] in ("ipc", "bp") else "--"
                        ax.plot(r[xkey], r["loss"], style, label=r["label"], lw=1.4)
                ax.set_title(f"depth {depth}, alpha {lr:g}", fontsize=9)
                ax.set_xlabel("cumulative SMMs" if xkey == "smms" else "training wall time (s)")
                ax.set_ylabel("training loss (CE)")
                ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        args.n_images, args.width, args.depths, args.smm_budget, args.points = 64, 32, [3], 60, 5
        args.out = args.out if args.out != p.get_default("out") else "/tmp/fullbatch_quick"
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    try:
        batch = fashion_subset(args.data_dir, args.n_images, args.data_seed)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.bench:
        return bench(args, batch, argv)
    results = []
    for lr in args.lrs:
        for depth in args.depths:
            for name, steps in runs_for(depth, args.pc_steps):
                r = train_curve(
                    name,
                    batch,
                    depth,
                    args.width,
                    lr,
                    args.inference_lr,
                    steps,
                    args.smm_budget,
                    args.points,
                    args.seed,
                )
                results.append({"lr": lr, "depth": depth, **r})
                print(
                    f"alpha {lr:g} depth {depth} {r['label']:8s} updates {r['updates']:5d} loss {r['loss'][0]:.4f}"
                    f" -> {r['final_loss']:.4f} in {r['seconds'][-1]:.1f}s{' DIVERGED' if r['diverged'] else ''}",
                    flush=True,
                )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "data": f"Fashion-MNIST train, {args.n_images} images drawn with data_seed",
        "seed": args.seed,
        "data_seed": args.data_seed,
        "width": args.width,
        "activation": "tanh",
        "optimizer_w": "SGD",
        "optimizer_x": "SGD",
        "inference_lr": args.inference_lr,
        "smm_budget": args.smm_budget,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.platform(),
        "skipped": [f"PC T={t} at depth {d} (T < L-1)" for d in args.depths for t in args.pc_steps if t < d - 1],
    }
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=1))
    plot(
        results,
        out.with_suffix(".png"),
        f"Full-batch training loss, {args.n_images} Fashion-MNIST images, "
        f"MLP width {args.width} tanh, SGD, gamma {args.inference_lr}",
    )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def bench(args: argparse.Namespace, batch: dict[str, torch.Tensor], argv: list[str] | None) -> int:
    rows = []
    for depth in args.depths:
        med = time_updates(
            batch, depth, args.width, args.lrs[0], args.inference_lr, args.pc_steps, args.bench, args.seed
        )
        smms = {
            label: schedule(name, depth, t, args.inference_lr)[1]
            for (name, t), label in zip(runs_for(depth, args.pc_steps), med)
        }
        rows.append(
            {
                "depth": depth,
                "median_update_s": med,
                "smms_per_update": smms,
                "median_s_per_smm": {k: med[k] / smms[k] for k in med},
                "ipc_update/bp_update": med["iPC"] / med["BP"],
            }
        )
        print(
            f"depth {depth}: "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items())
            + f"; iPC/BP per update {med['iPC'] / med['BP']:.2f}",
            flush=True,
        )
    out = Path(str(args.out) + "_update_times.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                "repeats": args.bench,
                "n_images": args.n_images,
                "width": args.width,
                "threads": args.threads,
                "seed": args.seed,
                "data_seed": args.data_seed,
                "torch": torch.__version__,
                "machine": platform.platform(),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
