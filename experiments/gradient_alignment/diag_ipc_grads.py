#!/usr/bin/env python
"""How far iPC's (or PC's) weight gradients are from backprop's, inference step by inference step.

    python experiments/gradient_alignment/diag_ipc_grads.py CHECKPOINT --data-dir ../shared/data/lm1b --json reports/ipc_gradient_alignment.json
    python experiments/gradient_alignment/diag_ipc_grads.py CHECKPOINT --algo pc --data-dir ../shared/data/lm1b --json reports/pc_gradient_alignment.json

On real batches and a given conditional-LM checkpoint (weights held fixed), runs the inference dynamics of
configs/clm_<algo>.yaml (value nodes, T, gamma, PC's discount: the algorithm's own x schedule) under each x-step
convention (`pc.x_grads` sample / batch) and, at every evaluation t, compares each parameter group's weight gradient
dF/dtheta with the BP gradient of the same batch: cosine similarity and norm ratio. The `learns` column marks the
evaluations the algorithm takes a weight step from (every t for iPC, the last for PC). AdamW normalises gradient
size, so the direction (cosine) is what reaches the weights. Writes a JSON and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pclm.errors import ArgumentParser

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {
    "embeddings": "pclm.word_embeddings",
    "block 0": "pclm.blocks.0.",
    "block 1": "pclm.blocks.1.",
    "head": "lm_head.",
}


def group_of(name: str) -> str | None:
    for group, prefix in GROUPS.items():
        if name.startswith(prefix) or (group == "embeddings" and name.startswith("pclm.position_embeddings")):
            return group
    return None


def flat_grads(model) -> dict[str, torch.Tensor]:
    import torch

    out: dict[str, list] = {}
    for name, p in model.named_parameters():
        g = group_of(name)
        if g is not None:
            out.setdefault(g, []).append((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1))
    return {g: torch.cat(v) for g, v in out.items()}


class Recording:
    """A gradient backend around another that asks for the weight gradients at every evaluation (not only at the
    schedule's learning ones) and keeps a copy of each, with whether the schedule learns from it."""

    owns_grads = False

    def __init__(self, inner, model) -> None:
        self.inner, self.model, self.seen = inner, model, []
        self.keep_values, self.batch_size = inner.keep_values, inner.batch_size

    def evaluate(self, learn, x_scale, need_x):
        self.model.zero_grad(set_to_none=True)
        value, loss = self.inner.evaluate([0], x_scale, need_x)
        self.seen.append((bool(learn), flat_grads(self.model)))
        return value, loss

    def values(self):
        return self.inner.values()


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a conditional-LM best/ folder")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--algo", choices=("ipc", "pc"), default="ipc", help="the schedule and config (default ipc)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument(
        "overrides", nargs="*", help="config overrides for configs/clm_<algo>.yaml (e.g. pc.inference_steps=6)"
    )
    args = p.parse_intermixed_args(argv)
    import torch
    from torch.utils.data import DataLoader

    from pclm.algorithms import build_algorithm
    from pclm.config import load_config
    from pclm.cpu import configure_cpu
    from pclm.data.collate import train_collator
    from pclm.errors import UsageError
    from pclm.models import PCLMForCausalLM
    from pclm.models.value_nodes import value_node_selector
    from pclm.pc import EnergyGraph
    from pclm.training.backends import AutogradGradients
    from pclm.training.lm import _lm_data, load_tokenizer
    from pclm.training.step import BatchRun, weight_groups

    configure_cpu("auto")
    try:
        cfg = load_config(
            ROOT / "configs" / f"clm_{args.algo}.yaml",
            ["data.max_length=32", *args.overrides],
            **{"data.data_dir": args.data_dir},
        )
        model = PCLMForCausalLM.from_pretrained(args.checkpoint)
    except (UsageError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    data = _lm_data(cfg, tokenizer)
    loader = DataLoader(
        data["train"].with_format(columns=["input_ids"]),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        collate_fn=train_collator("clm", tokenizer),
        generator=torch.Generator().manual_seed(0),
    )
    select = value_node_selector(cfg.pc.value_nodes)
    T, gamma = cfg.pc.inference_steps, cfg.pc.inference_lr
    discount = cfg.pc.discount if args.algo == "pc" else None
    rows = []
    for b, batch in enumerate(loader):
        if b == args.batches:
            break
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()  # BP: mean cross-entropy of the feedforward pass
        bp = flat_grads(model)
        frozen = torch.optim.SGD(weight_groups(model), lr=0.0)  # the schedule's weight steps change nothing
        for convention in ("sample", "batch"):
            algorithm = build_algorithm(args.algo, T, gamma, discount=discount, x_grads=convention)
            graph = EnergyGraph(select, batch["input_ids"].shape[0])
            backend = Recording(AutogradGradients(model, batch, graph), model)
            run = BatchRun(backend, algorithm, frozen)  # the training step's own schedule (x steps, PC's discount)
            for t in range(algorithm.steps):
                run.step(t)
            run.finish()
            for t, (learns, grads) in enumerate(backend.seen):
                for g, v in grads.items():
                    v, ref = v.double(), bp[g].double()  # float64: a million-entry dot product
                    cos = float(torch.nn.functional.cosine_similarity(v, ref, dim=0)) if v.norm() > 0 else 0.0
                    rows.append(
                        {
                            "batch": b,
                            "x_grads": convention,
                            "t": t,
                            "learns": learns,
                            "group": g,
                            "cosine": cos,
                            "norm_ratio": float(v.norm() / ref.norm()),
                        }
                    )
    sums: dict[tuple, list] = {}
    for r in rows:
        sums.setdefault((r["x_grads"], r["t"], r["group"]), []).append(r)
    table = [
        {
            "x_grads": k[0],
            "t": k[1],
            "group": k[2],
            "mean_cosine": sum(r["cosine"] for r in v) / len(v),
            "mean_norm_ratio": sum(r["norm_ratio"] for r in v) / len(v),
        }
        for k, v in sums.items()
    ]
    learning = sorted({r["t"] for r in rows if r["learns"]})
    doc = {
        "command": "python experiments/gradient_alignment/diag_ipc_grads.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "checkpoint": str(args.checkpoint),
        "algo": args.algo,
        "T": T,
        "inference_lr": gamma,
        "discount": discount,
        "value_nodes": cfg.pc.value_nodes,
        "batches": args.batches,
        "batch_size": cfg.train.batch_size,
        "rows": rows,
        "summary": table,
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")

    def markdown(key: str, fmt: str) -> list[str]:
        out = ["| x_grads | t | learns | " + " | ".join(GROUPS) + " |", "|---|---|---|" + "---|" * len(GROUPS)]
        cell = {(r["x_grads"], r["t"], r["group"]): format(r[key], fmt) for r in table}
        for convention in ("sample", "batch"):
            for t in sorted({r["t"] for r in rows}):
                cells = [cell.get((convention, t, g), "–") for g in GROUPS]
                out.append(f"| {convention} | {t} | {'yes' if t in learning else ''} | " + " | ".join(cells) + " |")
        return out

    lines = [
        f"# {'iPC' if args.algo == 'ipc' else 'PC'} weight gradients vs BP's, per inference step ({args.checkpoint})",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"configs/clm_{args.algo}.yaml: value nodes {cfg.pc.value_nodes}, T {T}, gamma {gamma}"
        + (f", discount {discount}" if discount is not None else "")
        + f"; weights held fixed; {args.batches} training batches of {cfg.train.batch_size} sentences. `learns`: the "
        "evaluations the schedule takes a weight step from.",
        "",
        "Mean cosine similarity with the BP gradient of the same batch (0 = no gradient yet):",
        "",
        *markdown("mean_cosine", ".3f"),
        "",
        "Mean norm ratio to the BP gradient. BP's is the mean cross-entropy per token; the energy's output term is a "
        "sum over each sentence's tokens, averaged over the batch, so the head's ratio at t = 0 is the mean number of "
        "targets per sentence. Compare groups within a row.",
        "",
        *markdown("mean_norm_ratio", ".3g"),
    ]
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
