"""Build the 1B Word sample shipped in ``pclm/data/lm1b_sample`` from a copy of the benchmark release.

    python tools/make_embedded_sample.py --source ../shared/data/lm1b --per-shard 4000 --seed 0

For each heldout shard found, keeps ``--per-shard`` sentences drawn with ``numpy.random.default_rng(seed)``
(in their original order) and writes them gzip-compressed under the release's file name, with a fixed
gzip header (mtime 0, no file name) so reruns give identical bytes. Copies the official 100-sentence
sample and the benchmark's licence and README, and writes ``README.md`` describing the result.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pclm.data import EMBEDDED_LM1B_DIR, find_lm1b_files  # noqa: E402
from pclm.errors import ArgumentParser, UsageError  # noqa: E402

HELDOUT_DIR = "heldout-monolingual.tokenized.shuffled"
COPIED = [
    "LICENSE.benchmark-scripts.Apache-2.0",
    "README.benchmark",
    "samples/heldout-00000.sample100.ordered.txt",
    "samples/heldout-00000.sample100.index_file.txt",
]

README = """# 1B Word sample embedded in pclm

A small, real subset of the One Billion Word Language Modeling Benchmark (Chelba et al., 2013,
http://www.statmt.org/lm-benchmark/), laid out like the release
(`1-billion-word-language-modeling-benchmark-r13output/`) so that `pclm.data.load_lm1b` reads it
unchanged. It is the default `data_dir` of `load_lm1b` (`pclm.data.EMBEDDED_LM1B_DIR`), for tests and
quick runs without the corpus.

## Contents
{shards}
- `samples/heldout-00000.sample100.ordered.txt` (+ `index_file.txt`): copied unchanged from the release,
  the official 100-sentence sample of the test shard `news.en.heldout-00000-of-00050`.
- `LICENSE.benchmark-scripts.Apache-2.0`, `README.benchmark`: copied unchanged from the release.

{total:,} pool sentences: with `load_lm1b`'s defaults (test_size 3000, dev_size 1000, seed 0) this gives
train {train:,} / dev 1,000 / test 3,000 / test_sample 100.

## How it was made
    python tools/make_embedded_sample.py --source {source} --per-shard {per_shard} --seed {seed}

From each complete heldout shard of the release (md5 matching `README.corpus_generation_checkpoints`),
`numpy.random.default_rng({seed})` draws {per_shard:,} line numbers (one generator, shards in order); the lines are
kept in their original order and gzip-compressed (mtime 0). The shard names are the release's, but each
file holds only part of its shard.

## Licence
The text is WMT11 news crawl as released by the benchmark for research use (see `README.benchmark`);
the benchmark's scripts are Apache-2.0 (`LICENSE.benchmark-scripts.Apache-2.0`).
"""


def write_gzip(path: Path, lines: list[str]) -> None:
    """Write lines gzip-compressed with a reproducible header (mtime 0, no embedded name)."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write("".join(line + "\n" for line in lines).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "lm1b")
    parser.add_argument("--output", type=Path, default=EMBEDDED_LM1B_DIR)
    parser.add_argument("--per-shard", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        files = find_lm1b_files(args.source)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shards = [p for p in files["heldout"] if not p.name.endswith(".gz")]
    if not shards:
        print(f"error: no uncompressed heldout shards in '{args.source}'", file=sys.stderr)
        return 2

    rng = np.random.default_rng(args.seed)
    if args.output.exists():
        shutil.rmtree(args.output)
    (args.output / HELDOUT_DIR).mkdir(parents=True)
    listing, total = [], 0
    for shard in shards:
        lines = [line for line in shard.read_text(encoding="utf-8").split("\n") if line.strip()]
        keep = np.sort(rng.choice(len(lines), size=min(args.per_shard, len(lines)), replace=False))
        out = args.output / HELDOUT_DIR / f"{shard.name}.gz"
        write_gzip(out, [lines[i] for i in keep])
        total += len(keep)
        md5 = hashlib.md5(shard.read_bytes()).hexdigest()
        listing.append(
            f"- `{HELDOUT_DIR}/{out.name}`: {len(keep):,} of the {len(lines):,} sentences of `{shard.name}` "
            f"(source md5 {md5})."
        )
    root = files["heldout"][0].parents[1]
    for name in COPIED:
        (args.output / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, args.output / name)
    source = os.path.relpath(args.source.resolve(), REPO)
    (args.output / "README.md").write_text(
        README.format(
            shards="\n".join(listing),
            total=total,
            train=total - 4000,
            source=source,
            per_shard=args.per_shard,
            seed=args.seed,
        ),
        encoding="utf-8",
    )
    size = sum(p.stat().st_size for p in args.output.rglob("*") if p.is_file())
    print(f"wrote {total:,} sentences to {args.output} ({size / 1024:.0f} KiB in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
