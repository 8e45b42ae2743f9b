#!/usr/bin/env python
"""Generative efficiency (the iPC paper's Fig. 2 left, SPEC.md section 5): total energy of a generative PC network
on a small CIFAR-10 (JPEG q75) subset against iterations, for PC with T in {8, 12, 16} and for iPC.

    python experiments/generative_efficiency/exp_generative.py --data-dir ../shared/data/cifar10-jpeg            # the committed report
    python experiments/generative_efficiency/exp_generative.py --data-dir ../shared/data/cifar10-jpeg --quick    # seconds: checks it runs

The net is `pclm.vision.generative.GenerativeMLP` (latent -> hidden -> image, tanh; image clamped, Gaussian energies,
N(0, I) prior on the latent), trained full batch with plain SGD on the weights (alpha) and the value nodes (gamma).
An iteration is one energy evaluation: a forward pass, one backward for all local gradients, then the updates.
* iPC: `train_batch` with T = 1 per iteration on one energy graph kept across calls: the value nodes are initialised
  once (latent at the prior mean 0, hidden nodes top-down from it) and then persist; weights move at every iteration.
* PC (Alg. 2): one `train_batch` call per weight update = T inference steps + the learning evaluation (T + 1
  iterations), value nodes re-initialised for every update.
* PC, persistent nodes: the same schedule on one graph kept across calls (warm-started inference), a stronger PC.
Energies: for iPC the energy at every iteration; for PC the energy after its T inference steps (the one its weights
learn from) and, separately, the energy at its initialisation.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from pclm.errors import ArgumentParser

ALL_GAUSSIAN = lambda name: gaussian  # noqa: E731


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with the CIFAR-10 parquet files (train.parquet)")
    p.add_argument("--out", default="reports/generative_efficiency", help="output path without extension")
    p.add_argument("--n-images", type=int, default=256)
    p.add_argument("--depth", type=int, default=4, help="weight layers (depth - 1 hidden layers)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument(
        "--configs",
        nargs="+",
        default=["5e-5:0.5", "5e-5:0.1", "5e-3:0.1"],
        help="alpha:gamma pairs (SGD lrs of the weights and of the value nodes)",
    )
    p.add_argument("--pc-steps", type=int, nargs="+", default=[8, 12, 16])
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--seed", type=int, default=0, help="initial weights")
    p.add_argument("--data-seed", type=int, default=0, help="which training images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny run: 16 images, one config, 40 iterations")
    return p


if __name__ == "__main__":  # answer --help and bad flags before the heavy imports below
    build_parser().parse_args()

import torch  # noqa: E402

from pclm.algorithms import IPC, PC  # noqa: E402
from pclm.data.vision import load_cifar10_parquet  # noqa: E402
from pclm.errors import UsageError  # noqa: E402
from pclm.pc import gaussian  # noqa: E402
from pclm.training.backends import Autograd  # noqa: E402
from pclm.training.step import Diverged, train_batch, weight_groups  # noqa: E402
from pclm.vision.generative import GenerativeMLP  # noqa: E402


def energy_curve(
    mode: str,
    batch: dict[str, torch.Tensor],
    depth: int,
    width: int,
    latent: int,
    lr: float,
    inference_lr: float,
    inference_steps: int,
    iterations: int,
    seed: int,
) -> dict:
    """Train one generative net for `iterations` energy evaluations; mode: "ipc", "pc" or "pc-persistent"."""
    torch.manual_seed(seed)
    images = batch["pixel_values"]
    model = GenerativeMLP(latent=latent, width=width, depth=depth, out_features=images[0].numel())
    optim_w = torch.optim.SGD(weight_groups(model), lr=lr)
    algorithm = IPC(1, inference_lr) if mode == "ipc" else PC(inference_steps, inference_lr)
    backend = Autograd(ALL_GAUSSIAN, keep_values=mode != "pc")  # one energy graph across calls but for plain PC
    it, seconds, diverged = 0, 0.0, False
    curve: dict[str, list] = {"iteration": [], "energy": [], "init_iteration": [], "init_energy": []}
    while it < iterations:
        t0 = time.perf_counter()
        try:
            stats = train_batch(model, batch, algorithm, optim_w, backend)
        except Diverged:
            diverged = True
            break
        seconds += time.perf_counter() - t0
        if mode == "ipc":
            curve["iteration"].append(it)
            curve["energy"].append(stats.energy_first)
        else:
            curve["init_iteration"].append(it)
            curve["init_energy"].append(stats.energy_first)
            curve["iteration"].append(it + inference_steps)
            curve["energy"].append(stats.energy_last)
        it += algorithm.steps
    label = "iPC" if mode == "ipc" else f"PC T={inference_steps}" + (", persistent" if mode == "pc-persistent" else "")
    return {
        "mode": mode,
        "label": label,
        "inference_steps": None if mode == "ipc" else inference_steps,
        "weight_updates": it if mode == "ipc" else it // algorithm.steps,
        "seconds": seconds,
        "diverged": diverged,
        "final_energy": curve["energy"][-1] if curve["energy"] else None,
        **curve,
    }


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys((r["lr"], r["inference_lr"]) for r in results))
    fig, axes = plt.subplots(1, len(configs), figsize=(4.6 * len(configs), 3.8), squeeze=False, layout="constrained")
    colors = {None: "k", 8: "tab:blue", 12: "tab:orange", 16: "tab:green"}
    for ax, (lr, gamma) in zip(axes[0], configs):
        for r in results:
            if (r["lr"], r["inference_lr"]) == (lr, gamma):
                style = "-" if r["mode"] != "pc-persistent" else ":"
                label = r["label"] + (" (diverged)" if r["diverged"] else "")
                ax.plot(
                    r["iteration"],
                    r["energy"],
                    style,
                    color=colors.get(r["inference_steps"]),
                    label=label,
                    lw=1.6 if r["mode"] == "ipc" else 1.1,
                    marker="x" if r["diverged"] else None,
                    markevery=[-1],
                )
        ax.set_yscale("log")
        ax.set_title(f"alpha {lr:g}, gamma {gamma:g}", fontsize=9)
        ax.set_xlabel("iterations (energy evaluations)")
        ax.set_ylabel("total energy F (per image)")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[0]:
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        # width stays: gamma must stay below 2 / lambda_max(W^T W) of the image layer, which grows as width shrinks
        args.n_images, args.latent, args.iterations, args.configs = 16, 32, 40, ["5e-3:0.1"]
        args.out = args.out if args.out != p.get_default("out") else "/tmp/generative_quick"
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    try:
        configs = [tuple(float(v) for v in c.split(":")) for c in args.configs]
        images, _ = load_cifar10_parquet(args.data_dir, "train", limit=args.n_images, seed=args.data_seed)
    except (UsageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    batch = {"pixel_values": images}
    results = []
    for lr, gamma in configs:
        runs = [("ipc", 1)] + [(mode, t) for mode in ("pc", "pc-persistent") for t in args.pc_steps]
        for mode, steps in runs:
            r = energy_curve(
                mode, batch, args.depth, args.width, args.latent, lr, gamma, steps, args.iterations, args.seed
            )
            results.append({"lr": lr, "inference_lr": gamma, **r})
            print(
                f"alpha {lr:g} gamma {gamma:g} {r['label']:20s} energy {r['energy'][0] if r['energy'] else float('nan'):.1f}"
                f" -> {r['final_energy'] or float('nan'):.1f} in {r['seconds']:.1f}s"
                f"{' DIVERGED' if r['diverged'] else ''}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "data": f"CIFAR-10 (JPEG q75) train, {args.n_images} images drawn with data_seed, pixels in [0, 1]",
        "seed": args.seed,
        "data_seed": args.data_seed,
        "depth": args.depth,
        "width": args.width,
        "latent": args.latent,
        "activation": "tanh",
        "optimizer_w": "SGD",
        "optimizer_x": "SGD",
        "iterations": args.iterations,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=1))
    plot(
        results,
        out.with_suffix(".png"),
        f"Generative PC net {args.latent}-"
        + f"{args.width}-" * (args.depth - 1)
        + f"{images[0].numel()} (tanh),\n{args.n_images} CIFAR-10 (JPEG q75) images, full batch, SGD",
    )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
