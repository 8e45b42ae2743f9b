#!/usr/bin/env python
"""How far iPC's weight gradients are from backprop's, inference step by inference step.

    python scripts/diag_ipc_grads.py CHECKPOINT --data-dir ../shared/data/lm1b --json reports/ipc_gradient_alignment.json

On real batches and a given conditional-LM checkpoint (weights held fixed), runs the inference dynamics of
configs/clm_ipc.yaml (value nodes, T, gamma) under each x-step convention (`pc.x_grads` sample / batch) and, at every
evaluation t, compares each parameter group's weight gradient dF/dtheta with the BP gradient of the same batch:
cosine similarity and norm ratio. AdamW normalises gradient size, so the direction (cosine) is what reaches the
weights. Writes a JSON and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a conditional-LM best/ folder")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("overrides", nargs="*", help="config overrides for configs/clm_ipc.yaml (e.g. pc.inference_steps=6)")
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
    from pclm.training.lm import _lm_data, load_tokenizer
    from pclm.training.step import evaluate_energy

    configure_cpu("auto")
    try:
        cfg = load_config(
            ROOT / "configs" / "clm_ipc.yaml",
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
    rows = []
    for b, batch in enumerate(loader):
        if b == args.batches:
            break
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()  # BP: mean cross-entropy of the feedforward pass
        bp = flat_grads(model)
        for convention in ("sample", "batch"):
            algorithm = build_algorithm("ipc", T, gamma, x_grads=convention)
            graph = EnergyGraph(select, batch["input_ids"].shape[0])
            optim_x = None
            for t in range(T):
                model.zero_grad(set_to_none=True)
                evaluate_energy(model, batch, graph, learn=[0])
                grads = flat_grads(model)
                for g, v in grads.items():
                    v, ref = v.double(), bp[g].double()  # float64: a million-entry dot product
                    cos = float(torch.nn.functional.cosine_similarity(v, ref, dim=0)) if v.norm() > 0 else 0.0
                    rows.append(
                        {
                            "batch": b,
                            "x_grads": convention,
                            "t": t,
                            "group": g,
                            "cosine": cos,
                            "norm_ratio": float(v.norm() / ref.norm()),
                        }
                    )
                if algorithm.x_grads == "sample":
                    graph.scale_value_grads()
                if optim_x is None:
                    optim_x = torch.optim.SGD(graph.values(), lr=gamma)
                optim_x.step()
                optim_x.zero_grad(set_to_none=True)
    summary = {}
    for r in rows:
        key = (r["x_grads"], r["t"], r["group"])
        summary.setdefault(key, []).append(r["cosine"])
    table = [{"x_grads": k[0], "t": k[1], "group": k[2], "mean_cosine": sum(v) / len(v)} for k, v in summary.items()]
    doc = {
        "command": "python scripts/diag_ipc_grads.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "checkpoint": str(args.checkpoint),
        "T": T,
        "inference_lr": gamma,
        "value_nodes": cfg.pc.value_nodes,
        "batches": args.batches,
        "batch_size": cfg.train.batch_size,
        "rows": rows,
        "summary": table,
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        f"# iPC weight gradients vs BP's, per inference step ({args.checkpoint})",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"configs/clm_ipc.yaml: value nodes {cfg.pc.value_nodes}, T {T}, gamma {gamma}; weights held fixed; "
        f"mean cosine similarity with the BP gradient over {args.batches} training batches of "
        f"{cfg.train.batch_size} sentences (0 = no gradient yet).",
        "",
        "| x_grads | t | " + " | ".join(GROUPS) + " |",
        "|---|---|" + "---|" * len(GROUPS),
    ]
    for convention in ("sample", "batch"):
        for t in range(T):
            cells = [
                next(
                    (
                        f"{r['mean_cosine']:.3f}"
                        for r in table
                        if r["x_grads"] == convention and r["t"] == t and r["group"] == g
                    ),
                    "–",
                )
                for g in GROUPS
            ]
            lines.append(f"| {convention} | {t} | " + " | ".join(cells) + " |")
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
