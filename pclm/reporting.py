"""Per-seed results and Table-3-style reports: converged flags, mean ± spread, dev-perplexity plots.

Inputs are either run folders (each with the `metrics.json` that `pclm.training.lm.train_lm` writes) or per-seed test
perplexities keyed by task and algorithm, `{"clm": {"pc": [...], "ipc": [...], "bp": [...]}, "mlm": {...}}`.

A seed counts as converged when its run finished without diverging and its test perplexity is below the method's
threshold (paper: 200 for BP and iPC, 800 for PC). Over the converged seeds a method reports
  - `mean`,
  - `pm`, the paper's "±": HALF the population standard deviation (it reproduces every cell of Table 3),
  - `std`, the population standard deviation (ddof=0),
  - `sem`, the standard error of the mean, sample standard deviation (ddof=1) / sqrt(n); nan for n < 2.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .folders import check_writable
from .runs import COMPLETED, CRASHED, DIVERGED, METRICS_FILE, MISSING, UNREADABLE, USABLE_STATUSES, read_metrics

__all__ = [
    "ALGOS",
    "DEFAULT_THRESHOLDS",
    "TASKS",
    "MethodSummary",
    "SeedResult",
    "is_converged",
    "load_runs",
    "load_seed_lists",
    "markdown_report",
    "parse_thresholds",
    "plot_dev_curves",
    "summarize",
    "table3",
    "threshold_of",
    "write_report",
]

TASKS = {"mlm": "masked LM", "clm": "conditional LM"}  # Table 3's rows, in its order
ALGOS = {"bp": "BP", "pc": "PC", "ipc": "iPC"}  # Table 3's columns, in its order
DEFAULT_THRESHOLDS = {"bp": 200.0, "pc": 800.0, "ipc": 200.0}


@dataclass
class SeedResult:
    """One seed's test perplexity (None when the run has none) and whether it converged."""

    task: str
    algo: str
    seed: int | None
    test_ppl: float | None
    status: str
    converged: bool
    run_dir: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)  # [{epoch, dev_ppl, ...}]


@dataclass
class MethodSummary:
    """Statistics over the converged seeds of one task and algorithm."""

    task: str
    algo: str
    threshold: float
    seeds: int
    converged: int
    mean: float
    pm: float
    std: float
    sem: float
    finished: int = 0  # seeds with a finite test perplexity, converged or not
    mean_all: float = math.nan  # mean and "±" over those seeds: what the method reached, threshold aside
    pm_all: float = math.nan


def is_converged(test_ppl: float | None, status: str, threshold: float) -> bool:
    """Finished without diverging (a usable status of pclm.runs) with a finite test perplexity below `threshold`."""
    return status in USABLE_STATUSES and test_ppl is not None and math.isfinite(test_ppl) and test_ppl < threshold


def parse_thresholds(items: list[str] | None) -> dict[str, float]:
    """`["pc=800", "clm:ipc=1322.1"]` -> the defaults with those entries replaced or added. A `TASK:ALGO` key sets
    the threshold of one task only (e.g. a unigram baseline's perplexity, which differs between the tasks)."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items or []:
        key, sep, value = item.partition("=")
        task, _, algo = key.rpartition(":")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or algo not in ALGOS or (task and task not in TASKS) or not number > 0:
            raise UsageError(
                f"--threshold must be [TASK:]ALGO=PERPLEXITY with TASK in {'|'.join(TASKS)}, ALGO in "
                f"{'|'.join(ALGOS)} and a positive number, got '{item}'"
            )
        thresholds[key] = number
    return thresholds


def threshold_of(thresholds: dict[str, float], task: str, algo: str) -> float:
    """The threshold of `algo` on `task`: its `task:algo` entry, else its `algo` entry."""
    return thresholds.get(f"{task}:{algo}", thresholds[algo])


def _check_names(task: Any, algo: Any, where: str) -> None:
    if task not in TASKS:
        raise UsageError(f"{where}: unknown task '{task}' (expected {' or '.join(TASKS)})")
    if algo not in ALGOS:
        raise UsageError(f"{where}: unknown algorithm '{algo}' (expected {', '.join(ALGOS)})")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    if not (value >= 1 or math.isnan(value)):  # exp of a mean NLL >= 0; NaN and inf mark a diverged run
        raise ValueError(f"not a perplexity (>= 1): {value!r}")
    return float(value)


def load_seed_lists(path: str | Path, thresholds: dict[str, float]) -> list[SeedResult]:
    """Per-seed test perplexities from `{task: {algo: [ppl or null, ...]}}`; a null is a crashed seed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read per-seed JSON '{path}' ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise UsageError(f"'{path}': expected {{task: {{algo: [test perplexities]}}}}")
    results = []
    for task, methods in data.items():
        if not isinstance(methods, dict):
            raise UsageError(f"'{path}': '{task}' must map algorithms to lists of test perplexities")
        for algo, values in methods.items():
            _check_names(task, algo, str(path))
            try:
                ppls = [_number(v) for v in values]
            except (TypeError, ValueError) as err:
                raise UsageError(f"'{path}': {task}/{algo} must be a list of numbers or nulls ({err})") from None
            for seed, ppl in enumerate(ppls):
                status = COMPLETED if ppl is not None else CRASHED
                results.append(
                    SeedResult(
                        task, algo, seed, ppl, status, is_converged(ppl, status, threshold_of(thresholds, task, algo))
                    )
                )
    return results


def _is_run(path: Path) -> bool:
    # train_lm writes config.yaml + config.json when a run starts and metrics.json from its first evaluation on;
    # config.json alone is no marker: every saved model (best/) has one.
    return (path / "metrics.json").is_file() or (path / "config.yaml").is_file()


def _run_files(paths: list[str | Path]) -> list[Path]:
    """The run folders among `paths`; a path that is not a run folder is searched for the run folders below it."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise UsageError(f"run folder '{path}' does not exist")
        if _is_run(path):
            found.append(path)
            continue
        below: list[Path] = []
        for run in sorted({p.parent for name in ("metrics.json", "config.yaml") for p in path.rglob(name)}):
            if not any(run.is_relative_to(outer) for outer in below):
                below.append(run)
        if not below:
            raise UsageError(f"'{path}' holds no run (no metrics.json or config.yaml in it or below it)")
        found.extend(below)
    return found


def load_runs(paths: list[str | Path], thresholds: dict[str, float]) -> list[SeedResult]:
    """One result per run folder. A run without metrics.json (it died before its first evaluation; task, algorithm
    and seed come from its config.json) or without `test_ppl` is listed as crashed, not converged."""
    results = []
    for run in _run_files(paths):
        m = read_metrics(run)
        if m["status"] == UNREADABLE:
            raise UsageError(f"cannot read '{run / METRICS_FILE}' ({m['error']})")
        path = run / ("config.json" if m["status"] == MISSING else METRICS_FILE)
        try:
            if m["status"] == MISSING:  # died before its first evaluation: task, algorithm and seed from its config
                m = {**json.loads(path.read_text()), "status": CRASHED}
            test_ppl = _number(m.get("test_ppl"))
            history = [{"epoch": int(h["epoch"]), "dev_ppl": _number(h["dev_ppl"])} for h in m.get("history", [])]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise UsageError(f"cannot read '{path}' ({type(err).__name__}: {err})") from None
        _check_names(m.get("task"), m.get("algo"), str(path))
        status = m["status"]
        if test_ppl is None and status not in (DIVERGED, CRASHED):
            status = f"{CRASHED} ({status})"  # e.g. "running": killed before its final evaluation
        results.append(
            SeedResult(
                m["task"],
                m["algo"],
                m.get("seed"),
                test_ppl,
                status,
                is_converged(test_ppl, status, threshold_of(thresholds, m["task"], m["algo"])),
                str(run),
                history,
            )
        )
    return results


def summarize(results: list[SeedResult], thresholds: dict[str, float]) -> list[MethodSummary]:
    """Per task and algorithm (Table 3's order), statistics over the converged seeds; nan where none converged."""
    summaries = []
    for task in TASKS:
        for algo in ALGOS:
            seeds = [r for r in results if (r.task, r.algo) == (task, algo)]
            if not seeds:
                continue
            ppl = [r.test_ppl for r in seeds if r.converged]
            n = len(ppl)
            mean = sum(ppl) / n if n else math.nan
            var = sum((p - mean) ** 2 for p in ppl) / n if n else math.nan  # population variance
            sem = math.sqrt(var * n / (n - 1) / n) if n > 1 else math.nan  # sample variance / n
            done = [
                r.test_ppl
                for r in seeds
                if r.status in USABLE_STATUSES and r.test_ppl is not None and math.isfinite(r.test_ppl)
            ]
            mean_all = statistics.fmean(done) if done else math.nan
            pm_all = statistics.pstdev(done) / 2 if done else math.nan
            summaries.append(
                MethodSummary(
                    task,
                    algo,
                    threshold_of(thresholds, task, algo),
                    len(seeds),
                    n,
                    mean,
                    math.sqrt(var) / 2,
                    math.sqrt(var),
                    sem,
                    len(done),
                    mean_all,
                    pm_all,
                )
            )
    return summaries


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "–"


def table3(summaries: list[MethodSummary], unigram: dict[str, float] | None = None) -> str:
    """Table 3 of the paper: rows masked LM / conditional LM, columns BP, #conv, PC, #conv, iPC, #conv, and a last
    column with a unigram model's perplexity on the same test targets when `unigram` ({task: ppl}) is given."""
    by = {(s.task, s.algo): s for s in summaries}
    extra = " unigram |" if unigram else ""
    lines = [
        "| | " + " | ".join(f"{name} | #conv" for name in ALGOS.values()) + " |" + extra,
        "|---" * (1 + 2 * len(ALGOS) + bool(unigram)) + "|",
    ]
    for task, row in TASKS.items():
        if not any((task, algo) in by for algo in ALGOS):
            continue
        cells = []
        for algo in ALGOS:
            s = by.get((task, algo))
            if s is None:
                cells += ["–", "–"]
            else:
                cells += [f"{_fmt(s.mean)} ± {_fmt(s.pm)}" if s.converged else "–", str(s.converged)]
        if unigram:
            cells.append(_fmt(unigram[task]) if task in unigram else "–")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(
    results: list[SeedResult],
    summaries: list[MethodSummary],
    command: str,
    plot: str | None = None,
    unigram: dict[str, float] | None = None,
) -> str:
    lines = [
        "Made by:",
        "",
        "```",
        command,
        "```",
        "",
        "## Test perplexity (Table 3 layout)",
        "",
        'Mean over the converged seeds ± half their population standard deviation (the paper\'s "±"); '
        "#conv = converged seeds."
        + (" unigram = a unigram model's test perplexity on the same targets." if unigram else ""),
        "",
        table3(summaries, unigram),
        "",
        "## Per method",
        "",
        "std is the population standard deviation (ddof=0) of the converged seeds; "
        "SEM = sample standard deviation (ddof=1) / sqrt(#conv).",
        "",
        "The last column is over every seed that finished with a finite test perplexity, converged or not.",
        "",
        "| task | method | threshold | #conv / seeds | mean | ± (std/2) | std (population) | SEM | "
        "all finished seeds: mean ± (std/2) (n) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {TASKS[s.task]} | {ALGOS[s.algo]} | < {s.threshold:g} | {s.converged} / {s.seeds} | "
            f"{_fmt(s.mean)} | {_fmt(s.pm)} | {_fmt(s.std)} | {_fmt(s.sem)} | "
            f"{_fmt(s.mean_all)} ± {_fmt(s.pm_all)} ({s.finished}) |"
        )
    lines += [
        "",
        "## Per seed",
        "",
        "| task | method | seed | test perplexity | status | converged | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (list(TASKS).index(r.task), list(ALGOS).index(r.algo))):
        ppl = "–" if r.test_ppl is None else f"{r.test_ppl:.3f}"
        lines.append(
            f"| {TASKS[r.task]} | {ALGOS[r.algo]} | {'–' if r.seed is None else r.seed} | {ppl} | "
            f"{r.status} | {'yes' if r.converged else 'no'} | {r.run_dir or '–'} |"
        )
    if plot:
        lines += [
            "",
            "## Dev perplexity per epoch",
            "",
            "Median over seeds (line) and min–max spread (band) of dev perplexity after each epoch; a seed "
            "that stopped early or diverged drops out of later epochs.",
            "",
            f"![dev perplexity]({plot})",
        ]
    return "\n".join(lines) + "\n"


def plot_dev_curves(results: list[SeedResult], path: Path) -> bool:
    """Median and min–max over seeds of dev perplexity per epoch, one panel per task (the paper's Fig. 3, right).
    Returns False, writing nothing, when no result has a history."""
    tasks = [t for t in TASKS if any(r.task == t and r.history for r in results)]
    if not tasks:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for algo, name in ALGOS.items():
            curves: dict[int, list[float]] = {}
            for r in results:
                if (r.task, r.algo) == (task, algo):
                    for h in r.history:
                        if h["dev_ppl"] is not None and math.isfinite(h["dev_ppl"]):
                            curves.setdefault(h["epoch"], []).append(h["dev_ppl"])
            if not curves:
                continue
            epochs = sorted(curves)
            seeds = sum(1 for r in results if (r.task, r.algo) == (task, algo) and r.history)
            (line,) = ax.plot(
                epochs,
                [statistics.median(curves[e]) for e in epochs],
                marker="o",
                ms=3,
                label=f"{name} ({seeds} seed{'s' * (seeds != 1)})",
            )
            ax.fill_between(
                epochs,
                [min(curves[e]) for e in epochs],
                [max(curves[e]) for e in epochs],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
        ax.set(title=TASKS[task], xlabel="epoch", ylabel="dev perplexity (median, min–max)", yscale="log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x  # JSON has no nan


def write_report(
    results: list[SeedResult],
    thresholds: dict[str, float],
    out_dir: str | Path,
    name: str,
    command: str,
    unigram: dict[str, float] | None = None,
) -> dict[str, Path]:
    """Write `<out_dir>/<name>.json`, `.md` and (when some run has a dev history) `.png`; returns their paths."""
    if not results:
        raise UsageError("no results to report")
    out_dir = Path(out_dir)
    summaries = summarize(results, thresholds)
    paths = {"json": out_dir / f"{name}.json", "md": out_dir / f"{name}.md"}
    check_writable([*paths.values(), out_dir / f"{name}.png"], "--out-dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    if plot_dev_curves(results, out_dir / f"{name}.png"):
        paths["png"] = out_dir / f"{name}.png"
    report = {
        "command": command,
        "thresholds": thresholds,
        "definitions": {
            "converged": "status not diverged/crashed and test_ppl < threshold",
            "pm": "half the population standard deviation of the converged seeds (the paper's '±')",
            "std": "population standard deviation (ddof=0) of the converged seeds",
            "sem": "sample standard deviation (ddof=1) / sqrt(converged)",
        },
        "summary": [{k: _finite(v) for k, v in asdict(s).items()} for s in summaries],
        "seeds": [{k: _finite(v) for k, v in asdict(r).items() if k != "history"} for r in results],
        "unigram_test_ppl": unigram or {},
        "table3_markdown": table3(summaries, unigram),
    }
    paths["json"].write_text(json.dumps(report, indent=1) + "\n")
    plot = paths["png"].name if "png" in paths else None
    paths["md"].write_text(markdown_report(results, summaries, command, plot, unigram))
    return paths
