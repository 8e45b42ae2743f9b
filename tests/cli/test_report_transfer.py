"""pclm.cli.report_transfer: each finished seed's score on the text is what `scripts/evaluate_lm.py` gives for
the same checkpoint, text and maskings, set beside the test perplexity of its metrics.json; bad input is one line."""

from __future__ import annotations

import json

import pytest

from pclm.cli import evaluate_lm, report_transfer


def test_scores_match_evaluate_lm(bp_run, tmp_path, one_thread):
    run, metrics, code = bp_run
    assert code == 0
    plan = tmp_path / "plan"
    (plan / "seeds" / "mlm_bp").mkdir(parents=True)
    (plan / "seeds" / "mlm_bp" / "seed0").symlink_to(run)
    (plan / "seeds" / "mlm_bp" / "seed1").mkdir()  # unfinished: no metrics, skipped
    text = tmp_path / "text.txt"
    text.write_text("the market rose again today .\nshares of the company fell sharply in early trading .\n" * 5)
    out = tmp_path / "reports"
    argv = [plan, text, "--name", "t", "--out-dir", out, "--max-length", 32, "--mask-seeds", "0-2"]
    assert report_transfer.main([str(a) for a in argv]) == 0
    doc = json.loads((out / "t.json").read_text())
    assert [(r["method"], r["seed"]) for r in doc["runs"]] == [("mlm_bp", 0)]
    score = tmp_path / "score.json"
    evaluate = evaluate_lm
    argv = [run / "best", text, "--max-length", 32, "--mask-seeds", "0-2", "--json", score]
    assert evaluate.main([str(a) for a in argv]) == 0
    expected = json.loads(score.read_text())
    row = doc["runs"][0]
    assert row["text_ppl"] == pytest.approx(expected["ppl"], rel=1e-9)
    assert row["text_targets"] == expected["targets"]
    assert row["ratio"] == pytest.approx(expected["ppl"] / metrics["test_ppl"], rel=1e-9)
    assert "| mlm_bp | 0 | completed |" in (out / "t.md").read_text()


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_seeds", "error: '{tmp}' has no seeds/ folder (not a run_plan.py output)"),
        ("mask_seeds", "error: --mask-seeds: range '3-1' runs backwards"),
        ("name", "error: --name must be a plain file stem, got 'a/b'"),
    ],
)
def test_bad_input_is_one_line(case, message, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("a b c .\n")
    argv = {
        "no_seeds": [tmp_path, text, "--name", "t"],
        "mask_seeds": [tmp_path, text, "--name", "t", "--mask-seeds", "3-1"],
        "name": [tmp_path, text, "--name", "a/b"],
    }[case]
    assert report_transfer.main([str(a) for a in argv]) == 2
    assert capsys.readouterr().err == message.format(tmp=tmp_path) + "\n"
    assert not (tmp_path / "reports").exists()
