"""`scripts/evaluate_lm.py`: on a text file of a run's test sentences it gives the perplexity the training job
computed on that split (same model, same tokenization), for a causal and a masked checkpoint; bad input is one
`error:` line and exit code 2, with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pclm.config import DataConfig
from tests.conftest import REPO, TINY, run_main

SCRIPT = REPO / "scripts" / "evaluate_lm.py"


def _script():
    from pclm.cli import evaluate_lm

    return evaluate_lm


def evaluate_main(argv: list) -> int:
    return _script().main([str(a) for a in argv])


@pytest.fixture(scope="module")
def clm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A finished one-epoch causal BP run of `TINY`: (run folder, metrics.json)."""
    run = tmp_path_factory.mktemp("clm_run") / "run"
    assert (
        run_main(
            [
                "--task",
                "clm",
                "--algo",
                "bp",
                "--seed",
                "1",
                "--threads",
                "1",
                *TINY,
                "train.epochs=1",
                "--output-dir",
                run,
            ]
        )
        == 0
    )
    return run, json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def test_sentences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test split of the `TINY` runs (embedded sample, split seed 0), one sentence per line."""
    from pclm.data.lm1b import EMBEDDED_LM1B_DIR, load_lm1b

    tiny = dict(a.split("=") for a in TINY)
    raw = load_lm1b(EMBEDDED_LM1B_DIR, *(int(tiny[f"data.{k}_size"]) for k in ("train", "dev", "test")), 0)
    path = tmp_path_factory.mktemp("text") / "test.txt"
    path.write_text("\n".join(raw["test"]["text"]) + "\n\n", encoding="utf-8")  # a trailing empty line is skipped
    return path


def max_length() -> str:
    return dict(a.split("=") for a in TINY)["data.max_length"]


def test_causal_perplexity_is_the_training_jobs(clm_run, test_sentences, tmp_path, capsys, one_thread):
    run, metrics = clm_run
    out = tmp_path / "scores.json"
    # another batch size than training's: padding must not change the score
    assert (
        evaluate_main([run / "best", test_sentences, "--max-length", max_length(), "--batch-size", 7, "--json", out])
        == 0
    )
    scores = json.loads(out.read_text())
    assert scores["ppl"] == scores["ppl_eos_in"] == pytest.approx(metrics["test_ppl_eos_in"], rel=1e-4)
    assert scores["ppl_eos_out"] == pytest.approx(metrics["test_ppl_eos_out"], rel=1e-4)  # the paper's count
    assert scores["ppl_eos_out"] != pytest.approx(scores["ppl_eos_in"], rel=1e-3)
    assert scores["task"] == "clm" and scores["sentences"] == metrics["data_sizes"]["test"] == 100
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"perplexity {scores['ppl']:.4f} (mean NLL ")
    assert printed[1] == f"without </s> as a target (the paper's count): perplexity {scores['ppl_eos_out']:.4f}"


def test_masked_perplexity_is_the_training_jobs(bp_run, test_sentences, tmp_path, one_thread):
    run, metrics, code = bp_run  # masked LM, the same TINY data
    assert code == 0
    out = tmp_path / "scores.json"
    assert evaluate_main([run / "best", test_sentences, "--max-length", max_length(), "--json", out]) == 0
    scores = json.loads(out.read_text())
    assert scores["ppl"] == pytest.approx(metrics["test_ppl"], rel=1e-4)
    assert scores["task"] == "mlm" and scores["mask_seed"] == DataConfig.eval_mask_seed


def test_defaults_are_the_training_configs():
    script = _script()
    args = script.parse_args(["ckpt", "text.txt"])
    assert (args.mlm_probability, args.mask_seed) == (DataConfig.mlm_probability, DataConfig.eval_mask_seed)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_checkpoint", "checkpoint folder not found: '{tmp}/missing'"),
        ("no_config", "'{tmp}' is not a pclm checkpoint (no config.json)"),
        ("other_model", "'{tmp}/bert' is not a pclm checkpoint (model_type 'bert', expected 'pclm')"),
        (
            "no_weights",
            "'{tmp}/empty_pclm' is not a complete pclm checkpoint (model.safetensors, tokenizer.json missing)",
        ),
        (
            "bad_positions",
            "'{tmp}/bad_pclm' is not a pclm checkpoint (config.json: 'max_position_embeddings' must be a positive "
            "integer, got 'abc')",
        ),
        (
            "null_width",
            "'{tmp}/null_pclm' is not a pclm checkpoint (config.json: 'hidden_size' must be a positive integer, "
            "got None)",
        ),
        ("no_text", "text file not found: '{tmp}/missing.txt'"),
        ("empty", "'{tmp}/empty.txt' has no non-empty line to score"),
        ("binary", "'{tmp}/binary.txt' is binary (it holds NUL bytes), not text"),
        ("latin1", "'{tmp}/latin1.txt' is not UTF-8 text (byte 0xe9 at offset 3)"),
        ("max_length", "--max-length must be in [2, 128] (the model's max_position_embeddings), got 1"),
        ("batch_size", "--batch-size must be in [1, 1048576], got 0"),
        ("batch_size_huge", "--batch-size must be in [1, 1048576], got 100000000000000000000"),
        ("json_under_a_file", "cannot create the folder of --json '{tmp}/good.txt': File exists"),
        ("json_a_folder", "cannot write '{tmp}/bert': a folder"),
    ],
)
def test_bad_input_is_one_line(case, message, clm_run, tmp_path, capsys):
    best = clm_run[0] / "best"
    good = tmp_path / "good.txt"
    good.write_text("the cat sat .\n")
    (tmp_path / "empty.txt").write_text(" \n\n")
    (tmp_path / "binary.txt").write_bytes(b"ab\x00cd\n")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 .\n".encode("latin-1"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "empty_pclm").mkdir()
    (tmp_path / "empty_pclm" / "config.json").write_text(json.dumps({"model_type": "pclm"}))
    for name, key, value in (("bad_pclm", "max_position_embeddings", "abc"), ("null_pclm", "hidden_size", None)):
        (tmp_path / name).mkdir()
        config = {**json.loads((best / "config.json").read_text()), key: value}
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    argv = {
        "no_checkpoint": [tmp_path / "missing", good],
        "no_config": [tmp_path, good],
        "other_model": [tmp_path / "bert", good],
        "no_weights": [tmp_path / "empty_pclm", good],
        "bad_positions": [tmp_path / "bad_pclm", good],
        "null_width": [tmp_path / "null_pclm", good],
        "no_text": [best, tmp_path / "missing.txt"],
        "empty": [best, tmp_path / "empty.txt"],
        "binary": [best, tmp_path / "binary.txt"],
        "latin1": [best, tmp_path / "latin1.txt"],
        "max_length": [best, good, "--max-length", 1],
        "batch_size": [best, good, "--batch-size", 0],
        "batch_size_huge": [best, good, "--batch-size", 10**20],
        "json_under_a_file": [best, good, "--json", good / "out.json"],
        "json_a_folder": [best, good, "--json", tmp_path / "bert"],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert evaluate_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["error: " + message.format(tmp=tmp_path)] and captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_mask_seeds_pool_the_nll_of_each_masking(bp_run, test_sentences, tmp_path, one_thread):
    """--mask-seeds 3,5: every masked token of both maskings counted once; oracle: two single-seed runs."""
    best = bp_run[0] / "best"
    single = {}
    for seed in (3, 5):
        out = tmp_path / f"seed{seed}.json"
        argv = [best, test_sentences, "--max-length", max_length(), "--mask-seed", seed, "--json", out]
        assert evaluate_main(argv) == 0
        single[seed] = json.loads(out.read_text())
    assert single[3]["targets"] != single[5]["targets"] or single[3]["nll"] != single[5]["nll"]  # two maskings
    out = tmp_path / "pooled.json"
    assert (
        evaluate_main([best, test_sentences, "--max-length", max_length(), "--mask-seeds", "3,5", "--json", out]) == 0
    )
    pooled = json.loads(out.read_text())
    targets = single[3]["targets"] + single[5]["targets"]
    nll = (single[3]["nll"] * single[3]["targets"] + single[5]["nll"] * single[5]["targets"]) / targets
    assert pooled["targets"] == targets and pooled["mask_seeds"] == [3, 5]
    assert pooled["nll"] == pytest.approx(nll, rel=1e-9)
    assert pooled["ppl"] == pytest.approx(math.exp(nll), rel=1e-9)


@pytest.mark.parametrize("seeds", ["5-3", "1,1", "x", "0-99999999999"])
def test_bad_mask_seeds_are_one_line(seeds, clm_run, tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("the cat sat .\n")
    assert evaluate_main([clm_run[0] / "best", good, "--mask-seeds", seeds]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --mask-seeds: ") and err.count("\n") == 1


@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_a_mask_seed_out_of_range_is_one_line(seed, clm_run, tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("the cat sat .\n")
    assert evaluate_main([clm_run[0] / "best", good, "--mask-seed", seed]) == 2
    assert capsys.readouterr().err == f"error: --mask-seed must be in [0, 4294967295], got {seed}\n"
