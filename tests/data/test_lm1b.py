"""1B Word loading: the split rule, the release layout, errors and the embedded sample.

Oracles: fixtures whose lines are unique and known by construction, the raw shard files themselves, and
the sizes the split rule promises.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from pclm.data import EMBEDDED_LM1B_DIR, RELEASE_DIRNAME, find_lm1b_files, load_lm1b, tokenize_lm1b
from pclm.data.lm1b import truncated_counts
from pclm.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
SHARED_LM1B = REPO.parent / "shared" / "data" / "lm1b"
HELDOUT = "heldout-monolingual.tokenized.shuffled"
TRAIN = "training-monolingual.tokenized.shuffled"
SAMPLE = "samples/heldout-00000.sample100.ordered.txt"


def write_shard(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    text = gzip.decompress(data) if path.suffix == ".gz" else data
    return [line for line in text.decode("utf-8").split("\n") if line.strip()]


@pytest.fixture(scope="module")
def heldout_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three heldout shards (one .gz) of unique lines, with empty lines mixed in; no shard 00000."""
    root = tmp_path_factory.mktemp("heldout_only")
    lines = []
    for shard, name in [
        (10, "news.en.heldout-00010-of-00050"),
        (11, "news.en.heldout-00011-of-00050.gz"),
        (12, "news.en.heldout-00012-of-00050"),
    ]:
        shard_lines = [f"sentence {shard} number {i} ." for i in range(40)]
        write_shard(root / HELDOUT / name, shard_lines[:20] + ["", "   "] + shard_lines[20:])
        lines += shard_lines
    return root, lines


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf_cache")


def texts(ds) -> list[str]:
    return list(ds["text"])


# --- split rule on a fixture of unique lines -------------------------------------------------------------
def test_split_sizes_and_partition(heldout_only, cache):
    root, lines = heldout_only
    splits = load_lm1b(root, train_size=None, dev_size=10, test_size=20, seed=0, cache_dir=cache)
    assert set(splits) == {"train", "dev", "test"}
    assert (len(splits["test"]), len(splits["dev"]), len(splits["train"])) == (20, 10, 120 - 30)
    parts = [set(texts(splits[s])) for s in ("train", "dev", "test")]
    assert sum(map(len, parts)) == 120  # unique lines: no row used twice
    assert set.union(*parts) == set(lines)  # every non-empty line used once, empty ones dropped


def test_train_size_draws_from_the_rest(heldout_only, cache):
    root, lines = heldout_only
    full = load_lm1b(root, train_size=None, dev_size=10, test_size=20, seed=3, cache_dir=cache)
    part = load_lm1b(root, train_size=25, dev_size=10, test_size=20, seed=3, cache_dir=cache)
    assert len(part["train"]) == 25
    assert texts(part["dev"]) == texts(full["dev"]) and texts(part["test"]) == texts(full["test"])
    assert set(texts(part["train"])) <= set(texts(full["train"]))


def test_seeded(heldout_only, cache):
    root, _ = heldout_only
    a = load_lm1b(root, dev_size=10, test_size=20, seed=1, cache_dir=cache)
    b = load_lm1b(root, dev_size=10, test_size=20, seed=1, cache_dir=cache)
    c = load_lm1b(root, dev_size=10, test_size=20, seed=2, cache_dir=cache)
    for split in ("train", "dev", "test"):
        assert texts(a[split]) == texts(b[split])
    assert texts(a["test"]) != texts(c["test"]) and texts(a["dev"]) != texts(c["dev"])


def test_splits_keep_corpus_order(heldout_only, cache):
    root, lines = heldout_only
    splits = load_lm1b(root, dev_size=10, test_size=20, seed=0, cache_dir=cache)
    position = {line: i for i, line in enumerate(lines)}
    for split in ("train", "dev", "test"):
        order = [position[t] for t in texts(splits[split])]
        assert order == sorted(order)


def test_pool_too_small(heldout_only, cache):
    root, _ = heldout_only
    with pytest.raises(UsageError, match="data.test_size"):
        load_lm1b(root, dev_size=100, test_size=20, cache_dir=cache)
    with pytest.raises(UsageError, match="data.train_size"):
        load_lm1b(root, train_size=91, dev_size=10, test_size=20, cache_dir=cache)
    with pytest.raises(UsageError, match="dev_size"):
        load_lm1b(root, dev_size=-1, cache_dir=cache)


# --- full release layout ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """Training shards (one .gz), heldout 00000 (test) and 00001, the sample file; nested in the release dir."""
    parent = tmp_path_factory.mktemp("full_release")
    root = parent / RELEASE_DIRNAME
    content = {
        "train1": [f"train one {i} ." for i in range(30)],
        "train2": [f"train two {i} ." for i in range(30)],
        "test": [f"test {i} ." for i in range(15)],
        "heldout1": [f"heldout {i} ." for i in range(15)],
        "sample": [f"test {i} ." for i in range(0, 15, 3)],
    }
    write_shard(root / TRAIN / "news.en-00001-of-00100", content["train1"])
    write_shard(root / TRAIN / "news.en-00002-of-00100.gz", content["train2"])
    write_shard(root / TRAIN / "README", ["not a shard"])
    write_shard(root / HELDOUT / "news.en.heldout-00000-of-00050", content["test"])
    write_shard(root / HELDOUT / "news.en.heldout-00001-of-00050.gz", content["heldout1"])
    write_shard(root / SAMPLE, content["sample"])
    return parent, content


def test_find_files_full_release(full_release):
    parent, _ = full_release
    root = parent / RELEASE_DIRNAME
    for data_dir in (parent, root):
        files = find_lm1b_files(data_dir)
        assert [p.name for p in files["train"]] == ["news.en-00001-of-00100", "news.en-00002-of-00100.gz"]
        assert [p.name for p in files["heldout"]] == ["news.en.heldout-00001-of-00050.gz"]
        assert files["test"] == [root / HELDOUT / "news.en.heldout-00000-of-00050"]
        assert files["test_sample"] == [root / SAMPLE]


def test_load_full_release(full_release, cache):
    parent, content = full_release
    splits = load_lm1b(parent, train_size=None, dev_size=7, test_size=3000, seed=0, cache_dir=cache)
    assert texts(splits["test"]) == content["test"]  # heldout 00000 whole, test_size unused
    assert texts(splits["test_sample"]) == content["sample"]
    pool = content["train1"] + content["train2"]
    assert len(splits["dev"]) == 7 and len(splits["train"]) == 60 - 7
    assert sorted(texts(splits["train"]) + texts(splits["dev"])) == sorted(pool)


def test_plain_shard_preferred_over_gz(tmp_path):
    write_shard(tmp_path / HELDOUT / "news.en.heldout-00003-of-00050", ["plain"])
    write_shard(tmp_path / HELDOUT / "news.en.heldout-00003-of-00050.gz", ["gz"])
    assert [p.name for p in find_lm1b_files(tmp_path)["heldout"]] == ["news.en.heldout-00003-of-00050"]


# --- errors a user can cause -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "unrelated", "file", "only_test_shard"])
def test_bad_data_dir(tmp_path, case, cache):
    data_dir = tmp_path / "lm1b"
    if case == "empty":
        data_dir.mkdir()
    elif case == "unrelated":
        write_shard(data_dir / HELDOUT / "notes.txt", ["x"])
    elif case == "file":
        write_shard(data_dir, ["x"])
    elif case == "only_test_shard":
        write_shard(data_dir / HELDOUT / "news.en.heldout-00000-of-00050", ["x"])
    with pytest.raises(UsageError) as err:
        load_lm1b(data_dir, cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message and str(data_dir) in message
    assert "--data-dir" in message and "data.data_dir" in message


# --- the embedded sample and the real data ---------------------------------------------------------------
def test_embedded_sample_loads_with_defaults(cache):
    splits = load_lm1b(cache_dir=cache)  # data_dir defaults to EMBEDDED_LM1B_DIR
    sizes = {name: len(ds) for name, ds in splits.items()}
    assert sizes == {"train": 8000, "dev": 1000, "test": 3000, "test_sample": 100}
    assert texts(splits["test_sample"]) == read_lines(EMBEDDED_LM1B_DIR / SAMPLE)
    shards = find_lm1b_files(EMBEDDED_LM1B_DIR)["heldout"]
    pool = Counter(line for shard in shards for line in read_lines(shard))
    assert Counter(texts(splits["train"]) + texts(splits["dev"]) + texts(splits["test"])) == pool


def test_embedded_sample_is_small_real_gzip():
    files = [p for p in EMBEDDED_LM1B_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 1_000_000
    assert (EMBEDDED_LM1B_DIR / "LICENSE.benchmark-scripts.Apache-2.0").is_file()
    shards = find_lm1b_files(EMBEDDED_LM1B_DIR)["heldout"]
    assert shards and all(p.suffix == ".gz" for p in shards)
    if SHARED_LM1B.is_dir():  # every embedded sentence is a line of the same real shard
        for shard in shards:
            real = set(read_lines(SHARED_LM1B / HELDOUT / shard.name.removesuffix(".gz")))
            assert set(read_lines(shard)) <= real


@pytest.mark.skipif(not SHARED_LM1B.is_dir(), reason=f"{SHARED_LM1B} absent")
def test_shared_data_default_split_is_the_paper_protocol(cache):
    # 47 pool shards and heldout 00000: test = all of 00000, dev 10,000, train the rest of the pool
    splits = load_lm1b(SHARED_LM1B, cache_dir=cache)
    sizes = {name: len(ds) for name, ds in splits.items()}
    assert sizes == {"train": 278_404, "dev": 10_000, "test": 6_075, "test_sample": 100}
    files = find_lm1b_files(SHARED_LM1B)
    assert len(files["heldout"]) == 47
    assert texts(splits["test"]) == read_lines(files["test"][0])
    pool = Counter(line for shard in files["heldout"] for line in read_lines(shard))
    assert sum(pool.values()) == 288_404
    assert Counter(texts(splits["train"]) + texts(splits["dev"])) == pool


@pytest.mark.skipif(not SHARED_LM1B.is_dir(), reason="needs ../shared/data/lm1b")
def test_shared_data_old_pool_is_reproducible_with_a_shard_selection(cache):
    # pclm's earlier reports: heldout 10-12 only, test drawn from that pool
    splits = load_lm1b(SHARED_LM1B, shards="10-12", test="pool", cache_dir=cache)
    sizes = {name: len(ds) for name, ds in splits.items()}
    assert sizes == {"train": 14_202, "dev": 1000, "test": 3000, "test_sample": 100}
    files = find_lm1b_files(SHARED_LM1B, shards="10-12")
    assert [p.name[:21] for p in files["heldout"]] == [f"news.en.heldout-000{k}" for k in (10, 11, 12)]
    pool = Counter(line for shard in files["heldout"] for line in read_lines(shard))
    assert sum(pool.values()) == 18_202
    assert Counter(texts(splits["train"]) + texts(splits["dev"]) + texts(splits["test"])) == pool


# --- the paper's protocol on a fixture laid out like the release ------------------------------------------
@pytest.fixture(scope="module")
def protocol_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[int, list[str]]]:
    """Heldout shards 1-3 (4,000 unique lines each) with and without heldout 00000 (25 lines): two roots."""
    with_test, without = tmp_path_factory.mktemp("with_test"), tmp_path_factory.mktemp("without_test")
    content = {k: [f"shard {k} line {i} ." for i in range(4000)] for k in (1, 2, 3)}
    content[0] = [f"test line {i} ." for i in range(25)]
    for root in (with_test, without):
        for k in (1, 2, 3):
            write_shard(root / HELDOUT / f"news.en.heldout-0000{k}-of-00050", content[k])
    write_shard(with_test / HELDOUT / "news.en.heldout-00000-of-00050", content[0])
    return with_test, without, content


def test_test_shard_present_gives_the_paper_protocol(protocol_release, cache):
    root, _, content = protocol_release
    splits = load_lm1b(root, cache_dir=cache)
    assert texts(splits["test"]) == content[0]  # the whole test shard, test_size unused
    assert (len(splits["dev"]), len(splits["train"])) == (10_000, 12_000 - 10_000)  # the paper's dev size
    pool = content[1] + content[2] + content[3]
    assert sorted(texts(splits["train"]) + texts(splits["dev"])) == sorted(pool)


def test_test_shard_absent_draws_test_from_the_pool(protocol_release, cache):
    _, root, content = protocol_release
    splits = load_lm1b(root, cache_dir=cache)
    assert (len(splits["test"]), len(splits["dev"]), len(splits["train"])) == (3000, 1000, 8000)
    assert not set(content[0]) & set(texts(splits["test"]))


def test_test_pool_ignores_the_test_shard_and_test_shard_needs_it(protocol_release, cache):
    with_test, without, content = protocol_release
    splits = load_lm1b(with_test, test="pool", test_size=50, dev_size=20, cache_dir=cache)
    assert len(splits["test"]) == 50 and not set(content[0]) & set(texts(splits["test"]))
    with pytest.raises(UsageError, match="data.test='shard' but .* has no heldout shard 00000"):
        load_lm1b(without, test="shard", cache_dir=cache)
    with pytest.raises(UsageError, match="data.test must be one of auto, shard, pool, got 'train'"):
        load_lm1b(with_test, test="train", cache_dir=cache)


def test_shard_selection_keeps_only_those_shards(protocol_release, cache):
    root, _, content = protocol_release
    splits = load_lm1b(root, shards="1,3", dev_size=100, cache_dir=cache)
    assert texts(splits["test"]) == content[0]
    assert sorted(texts(splits["train"]) + texts(splits["dev"])) == sorted(content[1] + content[3])
    same = load_lm1b(root, shards="1-1,3", dev_size=100, cache_dir=cache)
    assert texts(same["train"]) == texts(splits["train"])


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "4",
            "data.shards='4' names heldout \\(other than 00000\\) shard 00004, which .* does not hold \\(it holds 3: 1-3\\)",
        ),
        ("0", "names heldout \\(other than 00000\\) shard 00000"),
        ("x", "data.shards='x' is not a list of shard numbers such as 10-12 or 1,4,7-9"),
        ("3-1", "data.shards='3-1': range 3-1 runs backwards"),
    ],
)
def test_bad_shard_selection(protocol_release, cache, spec, message):
    root, _, _ = protocol_release
    with pytest.raises(UsageError, match=message):
        load_lm1b(root, shards=spec, cache_dir=cache)


# --- tokenization ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_length", [6, 64])
def test_tokenize_adds_specials_and_truncates(heldout_only, cache, tmp_path, max_length):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(REPO / "tokenizer"))
    root, _ = heldout_only
    raw = load_lm1b(root, dev_size=10, test_size=20, cache_dir=cache)
    out = tokenize_lm1b(raw, tokenizer, max_length=max_length, cache_dir=tmp_path)
    assert set(out) == set(raw)
    cut = truncated_counts(out, max_length)
    for split in raw:
        assert out[split].column_names == ["input_ids", "length"]
        n_cut = 0
        for text, ids, length in zip(texts(raw[split]), out[split]["input_ids"], out[split]["length"]):
            full = tokenizer(text).input_ids  # <s> ... </s>, no truncation
            expected = full if len(full) <= max_length else full[: max_length - 1] + [tokenizer.eos_token_id]
            assert ids == expected and ids[0] == tokenizer.bos_token_id and length == len(full)
            n_cut += len(full) > max_length
        assert cut[split] == n_cut
    assert (sum(cut.values()) > 0) == (max_length == 6)  # every fixture sentence is longer than 6 tokens


def test_tokenize_fingerprint_survives_tokenizer_calls(heldout_only, cache, tmp_path):
    # Calling a fast tokenizer with truncation=True changes its backend state; the cache key must not change.
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(REPO / "tokenizer"))
    root, _ = heldout_only
    raw = load_lm1b(root, dev_size=10, test_size=20, cache_dir=cache)
    first = tokenize_lm1b(raw, tokenizer, max_length=8, cache_dir=tmp_path)
    second = tokenize_lm1b(raw, tokenizer, max_length=8, cache_dir=tmp_path)
    other = tokenize_lm1b(raw, tokenizer, max_length=9, cache_dir=tmp_path)
    assert second["train"]._fingerprint == first["train"]._fingerprint
    assert other["train"]._fingerprint != first["train"]._fingerprint
    assert len(list(tmp_path.glob("lm1b-train-*.arrow"))) == 2


def test_tokenizing_in_several_processes_gives_the_same_rows(protocol_release, cache, tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(REPO / "tokenizer"))
    root, _, _ = protocol_release
    raw = load_lm1b(root, dev_size=100, cache_dir=cache)
    one = tokenize_lm1b(raw, tokenizer, max_length=8, cache_dir=tmp_path / "one")
    two = tokenize_lm1b(raw, tokenizer, max_length=8, cache_dir=tmp_path / "two", num_proc=2)
    for split in raw:
        assert two[split]["input_ids"] == one[split]["input_ids"]
    assert len(list((tmp_path / "two").glob("lm1b-train-*_of_00002.arrow"))) == 2  # really two processes
