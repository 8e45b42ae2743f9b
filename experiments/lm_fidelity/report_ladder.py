#!/usr/bin/env python
"""Report the fidelity ladder (experiments/lm_fidelity/lm_fidelity_ladder.yaml): one row per rung and task, BP, iPC and
iPC's equal-updates control side by side, in the paper's perplexity count (`</s>` out) and in pclm's (`</s>` in).

    python experiments/lm_fidelity/report_ladder.py runs/lm_fidelity_ladder --plan experiments/lm_fidelity/lm_fidelity_ladder.yaml

Reads <runs>/seeds/<method>/seed<k>/metrics.json, where a method is named <task>_<role>_<rung> (role bp, ipc or
control). A rung's missing role falls back to the default rung's run when the rung does not change that role's
network (placement leaves BP alone; layer norm off is a BP rung). Writes reports/lm_fidelity_ladder.{md,json,png};
unfinished runs are listed as such, with the command that resumes them.

With --probe (experiments/lm_fidelity/lm_fidelity_lr.yaml), the learning-rate probe's runs (<task>_<role>_<rung>_lr<digits>,
lr = 0.<digits>) are read from the same folder and tabled beside the ladder's own run of that rung, by dev perplexity.
With --sizes (experiments/lm_fidelity/lm_fidelity_pool.yaml), the runs of the same networks at other training sizes
(<task>_<role>_<rung>_<size>) are tabled beside the ladder's and the probe's runs of the same task, algorithm and
overrides: how the iPC/BP gap moves with the amount of training data.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import yaml

from pclm.errors import ArgumentParser, UsageError, one_line, report_usage_error
from pclm.runs import MISSING, UNREADABLE, parse_seeds, read_metrics

ROOT = Path(__file__).resolve().parents[2]
RUNGS = ("default", "init", "tanh", "placement", "layernorm_off", "all")
ROLES = ("bp", "ipc", "control")
# (rung, role) -> the method that stands in when the rung has no run of its own for that role
FALLBACK = {("placement", "bp"): "default", ("placement", "control"): "t5"}
TRAIN_SIZE = "data.train_size="  # the override that the size plan varies
PROBE_RUNG = {"t5": "placement"}  # a probe run named after a stand-in -> the rung it stands in for
RUNG_TEXT = {
    "default": "pclm's default (N(0, 0.02), GELU, out+scores)",
    "init": "PyTorch init",
    "tanh": "tanh",
    "placement": "value nodes scores+ffn_pre+head_pre",
    "layernorm_off": "layer norm off (BP)",
    "all": "all together (configs/reference)",
}


def _final(m: dict | None, count: str) -> float | None:
    """The kept model's test perplexity in `count` ("eos_out" / "eos_in"), when the run is final."""
    if not m or m.get("status") in (None, "running"):
        return None
    value = m.get(f"test_ppl_{count}", m.get("test_ppl"))  # the masked LM has one count
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _curve(m: dict | None, split: str, count: str) -> list[float]:
    history = (m or {}).get("history", [])
    return [v for h in history if (v := h.get(f"{split}_ppl_{count}", h.get(f"{split}_ppl"))) is not None]


def record(runs: Path, method: str, seed: int, **where) -> dict:
    """`where` (task, rung, role, ...) and what <runs>/seeds/<method>/seed<seed>/metrics.json says ("pending": none)."""
    m = read_metrics(runs / "seeds" / method / f"seed{seed}")
    m = None if m["status"] in (MISSING, UNREADABLE) else m
    dev = _curve(m, "dev", "eos_out")
    return {
        **where,
        "seed": seed,
        "method": method,
        "status": (m or {}).get("status", "pending"),
        "test_eos_out": _final(m, "eos_out"),
        "test_eos_in": _final(m, "eos_in"),
        "dev_eos_out": dev,
        "best_dev_eos_out": min(dev) if dev and (m or {}).get("status") != "running" else None,
        "test_curve_eos_out": _curve(m, "test", "eos_out"),
        "dev_eos_in": _curve(m, "dev", "eos_in"),
        "train_loss": [h["train_loss"] for h in (m or {}).get("history", []) if h.get("train_loss") is not None],
        **{k: (m or {}).get(k) for k in ("train_seconds", "truncated", "data_sizes")},
    }


def _ladder_method(plan: dict, task: str, role: str, rung: str) -> tuple[str, str | None] | None:
    """The ladder's run of `role` on `rung` and the rung it was borrowed from (None: its own): the rung's own run, else
    the FALLBACK stand-in, else (placement's control, where the plan has no T = 5 control) the default rung's."""
    names = (rung, FALLBACK.get((rung, role)), "default" if (rung, role) == ("placement", "control") else None)
    for name in names:
        if name and f"{task}_{role}_{name}" in plan["methods"]:
            return f"{task}_{role}_{name}", None if name == rung else name
    return None


def collect(runs: Path, plan: dict) -> list[dict]:
    """One record per (task, rung, role, seed) that the plan names or a fallback supplies."""
    methods = plan["methods"]
    rows = []
    for task in ("clm", "mlm"):
        for rung in RUNGS:
            for role in ROLES:
                found = _ladder_method(plan, task, role, rung)
                if found is None:
                    continue
                method, borrowed = found
                spec = methods[method]
                where = dict(task=task, rung=rung, role=role, borrowed_from=borrowed)
                where["overrides"] = spec.get("overrides", [])
                rows += [record(runs, method, seed, **where) for seed in parse_seeds(str(spec.get("seeds", 0)))]
    return rows


def probe_rows(runs: Path, probe: dict, plan: dict) -> list[dict]:
    """One record per (task, rung, role, lr): the probe's runs plus the ladder's runs of the same rung (their lrs).
    A probe run named after a stand-in (the control at T = 5) is tabled on the rung it stands in for (placement)."""
    entries = []  # (method, task, role, rung, lr, spec)
    for method, spec in probe["methods"].items():
        task, role, rung = method.rpartition("_lr")[0].split("_", 2)
        rung = PROBE_RUNG.get(rung, rung)
        lr = next((float(o.split("=", 1)[1]) for o in spec.get("overrides", []) if o.startswith("train.lr=")), None)
        entries.append((method, task, role, rung, lr, spec))
    for task, rung in sorted({(e[1], e[3]) for e in entries}):
        for role in ROLES:  # the ladder's runs of every role on a probed rung: the preset's lr, read from metrics
            if found := _ladder_method(plan, task, role, rung):
                entries.append((found[0], task, role, rung, None, plan["methods"][found[0]]))
    return [
        record(runs, method, seed, task=task, rung=rung, role=role, lr=lr)  # lr None: the ladder's run, preset lr
        for method, task, role, rung, lr, spec in entries
        for seed in parse_seeds(str(spec.get("seeds", 0)))
    ]


def probe_table(rows: list[dict], ladder_lr: dict[str, float]) -> list[str]:
    out = [
        "| rung | lr | BP dev (per epoch) | iPC dev (per epoch) | control dev (per epoch) | best dev: iPC / BP, iPC / control |",
        "|---|---|---|---|---|---|",
    ]
    for task, rung in sorted({(r["task"], r["rung"]) for r in rows}, key=lambda k: (k[0], RUNGS.index(k[1]))):
        group = [r for r in rows if (r["task"], r["rung"]) == (task, rung)]
        lrs = sorted(
            {r["lr"] if r["lr"] is not None else ladder_lr.get(r["role"]) for r in group}, key=lambda v: v or 0
        )
        at = {lr: [r for r in group if (r["lr"] or ladder_lr.get(r["role"])) == lr] for lr in lrs}
        for lr, seed in [(lr, seed) for lr in lrs for seed in sorted({r["seed"] for r in at[lr]})]:
            cells = {role: next((r for r in at[lr] if r["role"] == role and r["seed"] == seed), None) for role in ROLES}
            fmt = lambda r: (  # noqa: E731
                "–"
                if r is None
                else (", ".join(f"{d:.1f}" for d in r["dev_eos_out"]) or r["status"])
                + ("" if r["status"] in ("completed", "pending") else f" ({r['status']})")
            )
            best = {k: (v or {}).get("best_dev_eos_out") for k, v in cells.items()}
            ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "–"  # noqa: E731
            out.append(
                f"| {task} {RUNG_TEXT[rung]}{f' (seed {seed})' if seed else ''} | {lr} | {fmt(cells['bp'])} | {fmt(cells['ipc'])} | "
                f"{fmt(cells['control'])} | {ratio(best['ipc'], best['bp'])}, {ratio(best['ipc'], best['control'])} |"
            )
    return out


def _train_size(spec: dict, plan: dict) -> int | None:
    """A plan method's data.train_size (its own override wins over the plan's fixed one); None = the whole pool."""
    said = [
        o.partition("=")[2] for o in [*plan.get("fixed", []), *spec.get("overrides", [])] if o.startswith(TRAIN_SIZE)
    ]
    return int(said[-1]) if said and said[-1].isdigit() else None


def size_rows(runs: Path, sizes: dict, plans: list[dict]) -> list[dict]:
    """One record per (rung, role, training size, seed): every run of the sizes plan, and every run of `plans` (the
    ladder, the probe) with the same task, algorithm and overrides apart from data.train_size."""

    def same(spec: dict) -> tuple:
        rest = sorted(o for o in spec.get("overrides", []) if not o.startswith(TRAIN_SIZE))
        return spec["task"], spec["algo"], tuple(rest)

    out = []
    for name, spec in sizes["methods"].items():
        task, role, rest = name.split("_", 2)
        rung = rest.rpartition("_")[0]
        sources = [(name, spec, sizes)] + [
            (other, ospec, plan)
            for plan in plans
            for other, ospec in plan["methods"].items()
            if same(ospec) == same(spec)
        ]
        for method, mspec, plan in sources:
            for seed in parse_seeds(str(mspec.get("seeds", 0))):
                if (method, seed) not in {(r["method"], r["seed"]) for r in out}:
                    size = _train_size(mspec, plan)
                    out.append(record(runs, method, seed, task=task, rung=rung, role=role, train_size=size))
    return out


def size_table(rows: list[dict]) -> list[str]:
    out = [
        "| network | train sentences | BP test | iPC test | control test | iPC / BP | iPC / control | best dev: BP; iPC; control |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = {(r["task"], r["rung"], r["train_size"]) for r in rows}
    order = lambda k: (k[0], RUNGS.index(k[1]), k[2] is None, k[2] or 0)  # noqa: E731
    for task, rung, size in sorted(keys, key=order):
        at = [r for r in rows if (r["task"], r["rung"], r["train_size"]) == (task, rung, size)]
        role = {x: sorted((r for r in at if r["role"] == x), key=lambda r: r["seed"]) for x in ROLES}
        drawn = next((r["data_sizes"]["train"] for r in at if r["data_sizes"]), None)
        label = f"{size:,}" if size else "all" + (f" ({drawn:,})" if drawn else "")
        test = " | ".join(_values(role[x], "test_eos_out") for x in ROLES)
        ratios = f"{_ratio(role['ipc'], role['bp'], 'eos_out')} | {_ratio(role['ipc'], role['control'], 'eos_out')}"
        dev = "; ".join(_values(role[x], "best_dev_eos_out") for x in ROLES)
        out.append(f"| {task} {RUNG_TEXT[rung]} | {label} | {test} | {ratios} | {dev} |")
    return out


def _values(rows: list[dict], key: str) -> str:
    return ", ".join(f"{r[key]:.1f}" if r[key] is not None else r["status"] for r in rows) or "–"


def _cell(rows: list[dict], count: str) -> str:
    return _values(rows, f"test_{count}") + (" ¹" if rows and rows[0]["borrowed_from"] else "")


def _ratio(a: list[dict], b: list[dict], count: str) -> str:
    pairs = [(x[f"test_{count}"], y[f"test_{count}"]) for x in a for y in b if x["seed"] == y["seed"]]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    return ", ".join(f"{x / y:.2f}×" for x, y in pairs) or "–"


def table(rows: list[dict], task: str, count: str) -> list[str]:
    out = [
        "| rung | BP | iPC | control (iPC's updates, no value nodes) | iPC / BP | iPC / control |",
        "|---|---|---|---|---|---|",
    ]
    for rung in RUNGS:
        cells = {role: [r for r in rows if (r["task"], r["rung"], r["role"]) == (task, rung, role)] for role in ROLES}
        if not any(cells.values()):
            continue
        out.append(
            f"| {RUNG_TEXT[rung]} | {_cell(cells['bp'], count)} | {_cell(cells['ipc'], count)} | "
            f"{_cell(cells['control'], count)} | {_ratio(cells['ipc'], cells['bp'], count)} | "
            f"{_ratio(cells['ipc'], cells['control'], count)} |"
        )
    return out


def _losses(losses: list[float]) -> str:
    """Epoch-mean training losses, "(rose)" after one above the epoch before: a hint (not a test) of a blow-up."""
    marks = [f"{x:.2f}" + (" (rose)" if i and x > losses[i - 1] else "") for i, x in enumerate(losses)]
    return ", ".join(marks) or "–"


def curves(rows: list[dict]) -> list[str]:
    out = ["Train loss: each epoch's mean feedforward loss over its batches; (rose): above the epoch before.", ""]
    out += ["| run | seed | status | dev per epoch | test per epoch | train loss | train s |", "|---" * 7 + "|"]
    for r in {(r["method"], r["seed"]): r for r in rows}.values():  # a borrowed run once
        fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs if x is not None) or "–"  # noqa: E731
        kept = lambda x: "–" if x is None else f"{x:.1f} (kept model only)"  # noqa: E731
        out.append(
            f"| {r['method']} | {r['seed']} | {r['status']} | {fmt(r['dev_eos_out'])} | "
            f"{fmt(r['test_curve_eos_out']) if r['test_curve_eos_out'] else kept(r['test_eos_out'])} | "
            f"{_losses(r['train_loss'])} | {r['train_seconds'] or '–'} |"
        )
    return out


def plot(rows: list[dict], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["test_eos_out"] is not None and not r["borrowed_from"]]
    if not done:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task in zip(axes, ("clm", "mlm")):
        for r in (r for r in done if r["task"] == task):
            ax.plot(
                range(1, len(r["dev_eos_out"]) + 1), r["dev_eos_out"], marker="o", label=f"{r['method']} s{r['seed']}"
            )
        ax.set(title=f"{task}: dev perplexity (</s> out)", xlabel="epoch", yscale="log")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def read_plan(path: Path) -> dict:
    """A plan YAML with a `methods` mapping, or one UsageError."""
    try:
        plan = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read the plan '{path}': {one_line(err)}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("methods"), dict):
        raise UsageError(f"'{path}' is not a plan (no methods mapping)")
    return plan


def _read_unigram(path: Path) -> dict:
    try:
        unigram = json.loads(path.read_text())
        return {task: {"test": float(unigram[task]["test"])} for task in ("clm", "mlm")}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--unigram: '{path}' is not pclm-report unigram's JSON ({err})") from None


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path)
    p.add_argument("--plan", type=Path, default=ROOT / "experiments/lm_fidelity/lm_fidelity_ladder.yaml")
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    p.add_argument("--name", default="lm_fidelity_ladder")
    p.add_argument("--notes", type=Path, help="Markdown inserted after the tables (the reading of the results)")
    p.add_argument("--probe", type=Path, help="the learning-rate probe's plan (its runs are in the same folder)")
    p.add_argument("--unigram", type=Path, help="pclm-report unigram's JSON on the ladder's split (a floor to read by)")
    p.add_argument("--sizes", type=Path, help="the data-size plan (the same networks at other train sizes)")
    args = p.parse_args(argv)
    try:
        plan = read_plan(args.plan)
        probe_plan = read_plan(args.probe) if args.probe else None
        sizes_plan = read_plan(args.sizes) if args.sizes else None
        unigram = _read_unigram(args.unigram) if args.unigram else None
    except UsageError as err:
        return report_usage_error(err)
    rows = collect(args.runs, plan)
    sizes = next((r["data_sizes"] for r in rows if r["data_sizes"]), None)
    cut = next((r["truncated"] for r in rows if r["truncated"]), None)
    cut_text = ", ".join(f"{k} {v:,}" for k, v in (cut or {}).items() if k != "max_length")
    cut_text = f"{cut['max_length']} tokens: {cut_text}" if cut else "–"
    shown = lambda path: path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path  # noqa: E731
    md = [
        "# The fidelity ladder: pclm's LM against the paper's setup, one difference at a time",
        "",
        f"Plan: `{shown(args.plan)}` "
        "(command: `bash experiments/lm_fidelity/lm_fidelity_ladder.run.sh`). Data (split seed 0): "
        + (", ".join(f"{k} {v:,}" for k, v in sizes.items()) if sizes else "–")
        + "; test = heldout 00000, the benchmark's test shard. Every run: 2 epochs, seed 0 (a second seed where "
        "two values are shown), no early stopping, the kept model = the epoch with the best dev perplexity "
        f"(`</s>` out). Sentences cut at {cut_text} (truncated, `</s>` kept; none dropped).",
        "",
        "`pending`: in the plan, not run (the notes say why: on this ladder, conditional iPC and its control at the "
        "paper's lr 0.0032 beyond the first rows, left out once both ends of the ladder blew up at that lr); the run "
        "script runs them where it stopped. Train seconds come from runs beside other work on the 2-core VM (mostly "
        "two 1-thread runs side by side): not timings.",
        "",
        "Control = iPC's schedule (T AdamW steps per batch) with `pc.value_nodes=none`: the same updates on the BP "
        "gradient of the same batch, the same network. ¹ = the rung leaves this role's network unchanged; the "
        "default rung's run (placement: the control at T = 5) stands in.",
        "",
    ]
    if unigram:
        md += [f"Unigram model on the same split and targets (`{args.unigram.name}`): conditional test "]
        md[-1] += f"{unigram['clm']['test']:.1f}, masked test {unigram['mlm']['test']:.1f}."
        md += [""]
    for task, count, title in (
        ("clm", "eos_out", "Conditional LM, test perplexity (paper's count: `</s>` out)"),
        ("clm", "eos_in", "Conditional LM, test perplexity (pclm's earlier count: `</s>` in)"),
        ("mlm", "eos_out", "Masked LM, test perplexity (masked tokens only: the two counts agree)"),
    ):
        md += [f"## {title}", "", *table(rows, task, count), ""]
    probe = []
    if probe_plan:
        probe = probe_rows(args.runs, probe_plan, plan)
        md += [
            "## Learning-rate probe (dev perplexity, `</s>` out; decided on dev only)",
            "",
            "The same tuning budget for every method: three learning rates each on the reference network "
            "(`configs/reference`); then, at iPC's best of those (0.0016), pclm's default network and single rungs. "
            "2 epochs, seed 0. The paper's points (iPC 0.0032, BP 0.0016) are the ladder's own runs. Plan: `experiments/lm_fidelity/lm_fidelity_lr.yaml` (command: `PLAN=lm_fidelity_lr bash experiments/lm_fidelity/lm_fidelity_ladder.run.sh`).",
            "",
            *probe_table(probe, {"bp": 0.0016, "ipc": 0.0032, "control": 0.0032}),
            "",
        ]
    by_size = []
    if sizes_plan:
        by_size = size_rows(args.runs, sizes_plan, [plan, *([probe_plan] if probe_plan else [])])
        md += [
            "## Data size: the default and final conditional rows at 14,202, 50,000 and all training sentences",
            "",
            "Test perplexity (`</s>` out) and best dev, 2 epochs, the same dev 10,000 and test heldout 00000 at every "
            "size; iPC and its equal-updates control at lr 0.0016 (the probe's stable lr), BP at its paper lr 0.0016; "
            "seeds listed in order (0, 1). The 50,000 rows are the ladder's and the probe's runs; the full pool has no "
            "control (about 3 h each at one thread). Plan: "
            f"`{shown(args.sizes)}` "
            "(command: `PLAN=lm_fidelity_pool bash experiments/lm_fidelity/lm_fidelity_ladder.run.sh`).",
            "",
            *size_table(by_size),
            "",
        ]
    if args.notes:
        md += [args.notes.read_text().strip(), ""]
    md += ["## Every run, per epoch (`</s>` out)", "", *curves(rows + probe + by_size), ""]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if plot(rows, args.out_dir / f"{args.name}.png"):
        md += [f"![dev curves]({args.name}.png)", ""]
    (args.out_dir / f"{args.name}.md").write_text("\n".join(md))
    (args.out_dir / f"{args.name}.json").write_text(
        json.dumps({"plan": str(args.plan), "runs": rows, "probe": probe, "sizes": by_size}, indent=1)
    )
    print(f"wrote {args.out_dir / args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
