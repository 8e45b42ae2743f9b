#!/usr/bin/env python
"""Reference run of the JAX library pcx on this machine, for side-by-side comparison with benchmarks/bench_vision.py:
MLP 784-128-128-128-10 on MNIST, iPC with T=8, batch 128, the whole per-batch inference loop jit-compiled by pcx.
Prints seconds per epoch (epoch 1 includes the jit compilation) and test accuracy after each epoch, and writes a
JSON report (default reports/bench_pcx.json).

It runs in its own environment (pclm's .venv has no jax) and imports only jax, pcx, optax, numpy, the standard
library and pclm.errors (standard library only), from this checkout:

    python3 -m venv /work/pcx-venv && /work/pcx-venv/bin/pip install jax pcx numpy  # pcx 0.6.3 pins jax < 0.5
    flock /tmp/bench.lock /work/pcx-venv/bin/python benchmarks/bench_pcx.py --threads 2
    flock /tmp/bench.lock /work/pcx-venv/bin/python benchmarks/bench_pcx.py --threads 1 \
        --output reports/bench_pcx_1thread.json
    flock /tmp/bench.lock /work/pcx-venv/bin/python benchmarks/bench_pcx.py --algo bp --output reports/bench_pcx_bp.json

Settings match benchmarks/bench_vision.py (pclm):
* exact (erf) gelu between layers, as torch's F.gelu (--act relu or tanh for the others pclm's MLP offers), weights
  and biases drawn U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (equinox's Linear, the same law as torch's nn.Linear);
* images standardised with the mean and (unbiased) std of the training images, as pclm's data.normalize=true;
* energy F = sum over the batch of [sum over hidden nodes 0.5*||x - mu||^2 + cross-entropy(logits, label)], divided
  by the batch size for the weights (AdamW lr 1e-4, weight decay 0, optax defaults = torch defaults otherwise);
  each sample's value nodes move by the gradient of its own energy (SGD, lr gamma = 0.5): pcx's convention, and
  pclm's (pclm/pc/graph.py);
* iPC: value nodes initialised by a feedforward pass, then T steps, each one gradient of F w.r.t. value nodes and
  weights at the same point, then both updated; test accuracy from a feedforward pass over the 10000 test images;
* --algo bp: the same MLP trained by plain backprop in JAX (no pcx), mean cross-entropy, same AdamW, one update per
  batch;
* the last partial batch is kept (60000 = 468 x 128 + 96), as pclm's DataLoader (drop_last=False); under jit that
  shape compiles a second time, in epoch 1.

Timing: "seconds" per epoch is the training loop only (dispatch to the end of the last update, blocked on), as
pclm's seconds_per_epoch; the test pass is timed separately ("eval_seconds"). Epoch 1 includes compilation; the
summary gives it separately from the median of the later epochs. cpu_seconds (user + system of this process) per
epoch shows how many cores this process kept busy, other_processes_cpu_seconds what other jobs ran meanwhile (from
/proc/stat). Run timings under `flock /tmp/bench.lock` when other jobs share the cores. XLA_FLAGS already in the
environment are kept (and recorded), e.g. XLA_FLAGS=--xla_cpu_use_thunk_runtime=false for the older XLA CPU runtime.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the pcx environment has no pclm installed: its light errors module, from this checkout
from pclm.errors import ArgumentParser  # noqa: E402

# The usual recipe for a single-threaded XLA CPU backend (intra_op_parallelism_threads is not an XLA flag; XLA
# accepts it silently). With jax 0.4.38 it is not enough: XLA's CPU runtime still runs independent operations of one
# step on two threads at once (cpu_seconds ~ 2 x seconds on an idle machine), so --threads 1 also pins the process to
# one core (sched_setaffinity, before jax starts its threads). cpu_seconds / seconds shows how many cores were busy.
ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
EVAL_BATCH = 1000  # test pass batch (pclm's vision default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--algo", choices=["ipc", "bp"], default="ipc")
    p.add_argument(
        "--threads",
        type=int,
        choices=[1, 2],
        default=2,
        help=f"1: XLA_FLAGS='{ONE_THREAD_XLA_FLAGS}' and the process pinned to one core (both before "
        "jax is imported); 2: JAX's default (all cores)",
    )
    p.add_argument("--train-size", type=int, help="train on a random subset (default: all 60000)")
    p.add_argument("--seed", type=int, default=0, help="weights, subset and shuffling")
    p.add_argument("--inference-steps", type=int, default=8, help="T")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4, help="alpha (AdamW on the weights)")
    p.add_argument("--inference-lr", type=float, default=0.5, help="gamma (SGD on the value nodes)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=4, help="weight layers (4: 784-128-128-128-10)")
    p.add_argument(
        "--act", choices=["gelu", "relu", "tanh"], default="gelu", help="activation between layers (pclm's model.act)"
    )
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    p.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_pcx.json")
    args = p.parse_args(argv)
    for name in ("epochs", "inference_steps", "batch_size", "width", "depth"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.train_size is not None and not 1 <= args.train_size <= 60000:
        p.error("--train-size must be in 1..60000")
    return args


def read_idx(path: Path):
    """One gzipped IDX array (magic 0x0000TTNN, big-endian uint32 sizes, then the data), as numpy."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"not a uint8 IDX file: {path}")
    shape = struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(shape)


def load_mnist(data_dir: Path, train_size: int | None, seed: int):
    """(train images (N, 784) float32 standardised, train labels, test images, test labels, stats). Pixels in
    [0, 1], then (x - mean) / std with the mean and unbiased std of the training images used (pclm's
    data.normalize). A --train-size subset is a numpy draw, not the subset pclm's torch.randperm would draw."""
    import numpy as np

    files = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    out = {}
    for split, (images, labels) in files.items():
        x = read_idx(data_dir / images).reshape(-1, 28 * 28).astype(np.float32) / 255.0
        out[split] = (x, read_idx(data_dir / labels).astype(np.int32))
    x_train, y_train = out["train"]
    if train_size is not None:
        rows = np.random.default_rng(seed).permutation(len(y_train))[:train_size]
        x_train, y_train = x_train[rows], y_train[rows]
    mean, std = float(x_train.mean(dtype=np.float64)), float(x_train.std(dtype=np.float64, ddof=1))
    std = max(std, 1e-6)
    x_test, y_test = out["test"]
    norm = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    return norm(x_train), y_train, norm(x_test), y_test, {"mean": mean, "std": std}


def machine_info() -> dict:
    """Platform, Python, the cores this process may use (after --threads 1 pinned it: 1) and the CPU model."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor() or platform.machine(),
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes on this machine spent busy so far (/proc/stat), or None where unreadable. Minus
    this process's own CPU time over an epoch it shows how much other jobs ran on the shared cores meanwhile."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _activation(args, jax):
    """The activation `--act` names (gelu: exact, as torch's default)."""
    return {"relu": jax.nn.relu, "tanh": jax.numpy.tanh}.get(args.act, lambda a: jax.nn.gelu(a, approximate=False))


def build_ipc(args, jax, jnp, optax, px, pxc, pxnn, pxu, pxf):
    """pcx model and the jitted train / eval functions for iPC. Returns (train_on_batch, eval_on_batch, model,
    optim_w, optim_h, weights) where weights() lists the weight arrays (to block on)."""
    act = _activation(args, jax)
    sizes = [784] + [args.width] * (args.depth - 1) + [10]

    class PCMLP(pxc.EnergyModule):
        """x_0 = image; mu_l = act(W_l x_{l-1} + b_l), x_l a value node (l < L); logits = W_L x_{L-1} + b_L, the
        output node held at the one-hot label with the cross-entropy energy. Works on one sample (vmapped)."""

        def __init__(self) -> None:
            super().__init__()
            self.act = px.static(act)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            self.vodes = [pxc.Vode() for _ in sizes[1:-1]] + [pxc.Vode(pxc.ce_energy)]
            self.vodes[-1].h.frozen = True  # the label: never a value node that moves

        def __call__(self, x, y=None):
            for layer, vode in zip(self.layers[:-1], self.vodes[:-1]):
                x = vode(self.act(layer(x)))
            self.vodes[-1](self.layers[-1](x))  # under STATUS.INIT: h = u = the feedforward logits
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    vode_axes = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

    @pxf.vmap(vode_axes, in_axes=(0, 0), out_axes=0)
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(vode_axes, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
    def energy(x, *, model):
        logits = model(x)
        # sum over the batch: d/dx of a sample is the gradient of its own energy; d/dW is the batch sum
        return jax.lax.psum(model.energy(), "batch"), logits

    free = pxu.M_hasnot(pxc.VodeParam, frozen=True) | pxnn.LayerParam  # value nodes and weights, one gradient
    grad_energy = pxf.value_and_grad(free.to([False, True]), has_aux=True)(energy)
    scratch = pxc.VodeParam | pxc.VodeParam.Cache

    @pxf.jit(static_argnums=0)
    def train_on_batch(T, x, y, *, model, optim_w, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)  # feedforward initialisation, output node held at the label
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(T):  # iPC: both move at every step, from the same gradients
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                (F, _), g = grad_energy(x, model=model)
            optim_h.step(model, g["model"])
            optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
        optim_h.clear()
        # value nodes leave the jit as None, so the next call sees the same input signature whatever this batch's
        # size was (otherwise a partial batch would force a third compilation at the start of epoch 2)
        model.clear_params(scratch)
        return F / x.shape[0]

    @pxf.jit()
    def eval_on_batch(x, y, *, model):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            logits = forward(x, None, model=model)
        model.clear_params(scratch)
        return (logits.argmax(-1) == y).sum()

    model = PCMLP()
    optim_h = pxu.Optim(lambda: optax.sgd(args.inference_lr))
    optim_w = pxu.Optim(lambda: optax.adamw(args.lr, weight_decay=0.0), pxu.M(pxnn.LayerParam)(model))

    def weights():
        return [p.get() for layer in model.layers for p in (layer.nn.weight, layer.nn.bias)]

    def train(x, y):
        return train_on_batch(args.inference_steps, x, y, model=model, optim_w=optim_w, optim_h=optim_h)

    def evaluate(x, y):
        return eval_on_batch(x, y, model=model)

    return train, evaluate, weights


def build_bp(args, jax, jnp, optax):
    """Plain JAX MLP (no pcx) trained by backprop: mean cross-entropy, AdamW, one jitted update per batch."""
    act = _activation(args, jax)
    sizes = [784] + [args.width] * (args.depth - 1) + [10]
    key = jax.random.PRNGKey(args.seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as equinox / torch
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / a**0.5
        params.append(
            (
                jax.random.uniform(kw, (b, a), minval=-bound, maxval=bound),
                jax.random.uniform(kb, (b,), minval=-bound, maxval=bound),
            )
        )

    def logits_fn(params, x):
        for w, b in params[:-1]:
            x = act(x @ w.T + b)
        w, b = params[-1]
        return x @ w.T + b

    def loss_fn(params, x, y):
        return -jnp.take_along_axis(jax.nn.log_softmax(logits_fn(params, x)), y[:, None], axis=1).mean()

    opt = optax.adamw(args.lr, weight_decay=0.0)
    state = {"params": params, "opt": opt.init(params)}

    @jax.jit
    def step(params, opt_state, x, y):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def correct(params, x, y):
        return (logits_fn(params, x).argmax(-1) == y).sum()

    def train(x, y):
        state["params"], state["opt"], loss = step(state["params"], state["opt"], x, y)
        return loss

    def evaluate(x, y):
        return correct(state["params"], x, y)

    def weights():
        return jax.tree_util.tree_leaves(state["params"])

    return train, evaluate, weights


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads == 1:  # must be set before jax is imported
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ONE_THREAD_XLA_FLAGS).strip()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax
        import pcx
        import pcx.functional as pxf
        import pcx.nn as pxnn
        import pcx.predictive_coding as pxc
        import pcx.utils as pxu
    except ImportError as err:
        print(
            f"error: this benchmark needs jax and pcx ({err}); install them in a separate venv: "
            "python3 -m venv /work/pcx-venv && /work/pcx-venv/bin/pip install jax pcx numpy",
            file=sys.stderr,
        )
        return 2
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    try:
        x_train, y_train, x_test, y_test, stats = load_mnist(args.data_dir, args.train_size, args.seed)
    except (OSError, ValueError) as err:
        print(f"error: cannot read MNIST from {args.data_dir}: {err} (pass --data-dir)", file=sys.stderr)
        return 2

    if args.algo == "ipc":
        pcx.RKG.seed(args.seed)  # pcx seeds its global key from the clock otherwise; equinox draws the weights from it
        train, evaluate, weights = build_ipc(args, jax, jnp, optax, pcx, pxc, pxnn, pxu, pxf)
    else:
        train, evaluate, weights = build_bp(args, jax, jnp, optax)

    n, bs = len(y_train), args.batch_size
    n_batches = -(-n // bs)
    rng = np.random.default_rng(args.seed)
    command = "python benchmarks/bench_pcx.py " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    print(
        f"pcx {ver('pcx')}, jax {ver('jax')}, jaxlib {ver('jaxlib')}, {jax.devices()[0].platform}, "
        f"threads={args.threads} (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}); {args.algo}, "
        f"{n} train / {len(y_test)} test images, {n_batches} batches of {bs}/epoch",
        flush=True,
    )

    def test_accuracy() -> float:
        correct = 0
        for i in range(0, len(y_test), EVAL_BATCH):
            correct += int(evaluate(x_test[i : i + EVAL_BATCH], y_test[i : i + EVAL_BATCH]))
        return correct / len(y_test)

    epochs = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        busy0, cpu0, t0 = busy_cpu_seconds(), os.times(), time.perf_counter()
        last = None
        for b in range(n_batches):
            rows = order[b * bs : (b + 1) * bs]
            last = train(
                x_train[rows], y_train[rows] if args.algo == "bp" else np.eye(10, dtype=np.float32)[y_train[rows]]
            )
        jax.block_until_ready(weights())
        seconds = time.perf_counter() - t0
        cpu1, busy1 = os.times(), busy_cpu_seconds()
        cpu_seconds = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        others = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu_seconds)
        t1 = time.perf_counter()
        acc = test_accuracy()
        eval_seconds = time.perf_counter() - t1
        last = float(last)
        if not np.isfinite(last):
            print(
                f"error: non-finite training {'energy' if args.algo == 'ipc' else 'loss'} in epoch {epoch}",
                file=sys.stderr,
            )
            return 1
        epochs.append(
            {
                "epoch": epoch,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_seconds, 2),
                "other_processes_cpu_seconds": None if others is None else round(others, 2),
                "eval_seconds": round(eval_seconds, 3),
                "test_accuracy": acc,
                ("last_batch_energy" if args.algo == "ipc" else "last_batch_loss"): round(last, 5),
            }
        )
        busy = "" if others is None else f", other processes {others:.1f} s"
        print(
            f"epoch {epoch}: {seconds:.2f} s train{' incl. jit compile' if epoch == 1 else ''} "
            f"(cpu {cpu_seconds:.1f} s{busy}), test {eval_seconds:.2f} s, test accuracy {100 * acc:.2f}%",
            flush=True,
        )

    later = [e["seconds"] for e in epochs[1:]]
    summary = {
        "epoch1_seconds": epochs[0]["seconds"],
        "median_seconds_after_first": round(statistics.median(later), 3) if later else None,
        "mean_seconds_after_first": round(statistics.mean(later), 3) if later else None,
        "min_seconds_after_first": round(min(later), 3) if later else None,
        "final_test_accuracy": epochs[-1]["test_accuracy"],
    }
    if all(e["other_processes_cpu_seconds"] is not None for e in epochs):
        # cores other processes kept busy on average while this one trained (0 = an idle machine), for epoch 1 and
        # for the later epochs (the median's)
        def cores(part):
            return round(sum(e["other_processes_cpu_seconds"] for e in part) / sum(e["seconds"] for e in part), 2)

        summary["other_processes_cores_busy_epoch1"] = cores(epochs[:1])
        if later:
            summary["other_processes_cores_busy_after_first"] = cores(epochs[1:])
    print(
        f"{args.algo} (pcx {ver('pcx')}, jax {ver('jax')}, threads={args.threads}): "
        f"epoch 1 {summary['epoch1_seconds']:.2f} s (incl. compile), median of epochs 2-{args.epochs} "
        + (f"{summary['median_seconds_after_first']:.2f} s" if later else "n/a")
        + f", test accuracy {100 * summary['final_test_accuracy']:.2f}% after {args.epochs} epochs"
    )
    for part, key in (
        ("epoch 1", "other_processes_cores_busy_epoch1"),
        (f"epochs 2-{args.epochs}", "other_processes_cores_busy_after_first"),
    ):
        if summary.get(key, 0) > 0.1:
            print(
                f"warning: other processes kept {summary[key]:.2f} cores busy on average during {part}: those "
                "timings are not those of an idle machine",
                file=sys.stderr,
            )
    report = {
        "command": command,
        "python": sys.executable,
        "algo": args.algo,
        "settings": {
            "model": f"MLP {'-'.join(map(str, [784] + [args.width] * (args.depth - 1) + [10]))}",
            "activation": args.act if args.act != "gelu" else "gelu (exact, erf)",
            "init": "equinox Linear: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
            if args.algo == "ipc"
            else "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases",
            "epochs": args.epochs,
            "batch_size": bs,
            "seed": args.seed,
            "optimizer_w": f"optax.adamw(lr={args.lr}, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8)",
            **(
                {
                    "inference_steps": args.inference_steps,
                    "optimizer_x": f"optax.sgd(lr={args.inference_lr}) on the value nodes, re-initialised per batch",
                    "value_init": "feedforward pass (pcx STATUS.INIT)",
                    "energy": "sum over batch of [sum_hidden 0.5*||x - mu||^2 + CE(logits, label)]; weight gradients "
                    "divided by batch size (scale_by=1/B), value-node gradients per sample (own energy)",
                    "schedule": "iPC: per batch T steps, each one value_and_grad w.r.t. value nodes and weights, then "
                    "SGD on value nodes and AdamW on weights from those gradients",
                    "jit": "one pcx jit per batch shape: init pass + T unrolled steps",
                }
                if args.algo == "ipc"
                else {"loss": "mean cross-entropy (plain JAX backprop, no pcx)", "jit": "one jax.jit per batch shape"}
            ),
            "normalisation": {
                "scheme": "(x - mean) / std over all pixels of the training images used (unbiased "
                "std), as pclm data.normalize=true",
                **stats,
            },
            "train_images": n,
            "test_images": len(y_test),
            "train_subset": None
            if args.train_size is None
            else f"numpy default_rng({args.seed}).permutation[:{args.train_size}] (not pclm's torch subset)",
            "batches_per_epoch": n_batches,
            "last_partial_batch": f"kept ({n % bs} images), as pclm's DataLoader (drop_last=False)"
            if n % bs
            else "none (n divisible)",
            "shuffle": f"numpy default_rng({args.seed}).permutation each epoch",
            "eval": f"feedforward over the test set in batches of {EVAL_BATCH}",
            "seconds": "training loop of the epoch, blocked until the last update finished; eval timed apart",
        },
        "versions": {
            "pcx": ver("pcx"),
            "jax": ver("jax"),
            "jaxlib": ver("jaxlib"),
            "optax": ver("optax"),
            "equinox": ver("equinox"),
            "numpy": ver("numpy"),
        },
        "threads": {
            "setting": args.threads,
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "note": "1: single-threaded XLA CPU flags and the process pinned to one core (the flags alone "
            "still let XLA use two threads); 2: JAX defaults on this 2-core machine",
        },
        "machine": {**machine_info(), "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "epochs": epochs,
        "summary": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
