"""pclm.cli.report_transfer: each finished seed's score on the text is what `scripts/evaluate_lm.py` gives for
the same checkpoint, text and maskings, set beside the test perplexity of its metrics.json; bad input is one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pclm.cli import evaluate_lm, report_transfer
from pclm.models.hub import checkpoint_tokenizer
from tests.conftest import tiny_lm


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


def test_a_causal_run_is_scored_in_the_count_it_reported(tmp_path, tokenizer, one_thread):
    """A run trained with data.count_eos=false reports its test perplexity without `</s>`; the text is scored so
    too (comparing the two counts would read as a 20% transfer gap)."""
    model = tiny_lm("clm", vocab_size=len(tokenizer), max_position_embeddings=32)
    folder = tmp_path / "plan" / "seeds" / "clm_ipc" / "seed0"
    model.save_pretrained(folder / "best")
    checkpoint_tokenizer(tokenizer, model.config, causal=True).save_pretrained(folder / "best")
    metrics = {"status": "completed", "test_ppl": 40.0, "ppl_counts": "</s> out", "data_sizes": {"test": 6075}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    text = tmp_path / "text.txt"
    text.write_text("the market rose again today .\nshares fell .\n")
    score = tmp_path / "score.json"
    assert evaluate_lm.main([str(a) for a in [folder / "best", text, "--max-length", 32, "--json", score]]) == 0
    expected = json.loads(score.read_text())
    out = tmp_path / "reports"
    assert report_transfer.main([str(a) for a in [tmp_path / "plan", text, "--name", "t", "--out-dir", out]]) == 0
    row = json.loads((out / "t.json").read_text())["runs"][0]
    assert row["counts"] == "</s> out" and row["test_size"] == 6075
    assert row["text_ppl"] == pytest.approx(expected["ppl_eos_out"], rel=1e-9) != pytest.approx(expected["ppl"])
    assert row["ratio"] == pytest.approx(expected["ppl_eos_out"] / 40.0, rel=1e-9)
    assert "| clm_ipc | 0 | completed | </s> out | 6075 | 40.0 |" in (out / "t.md").read_text()


def test_a_seed_whose_model_is_gone_keeps_its_earlier_row_while_text_and_test_score_stand(tmp_path, tokenizer):
    """A replaced machine loses `best/`: a re-run of the report keeps that seed's earlier score, marked, unless the
    text or the run's test perplexity has changed since (then the row would describe another run or text)."""
    model = tiny_lm("clm", vocab_size=len(tokenizer), max_position_embeddings=32)
    plan, out, text = tmp_path / "plan", tmp_path / "reports", tmp_path / "text.txt"
    for seed in (0, 1):
        folder = plan / "seeds" / "clm_bp" / f"seed{seed}"
        model.save_pretrained(folder / "best")
        checkpoint_tokenizer(tokenizer, model.config, causal=True).save_pretrained(folder / "best")
        (folder / "metrics.json").write_text(json.dumps({"status": "completed", "test_ppl": 40.0 + seed}))
    text.write_text("the market rose again today .\nshares fell .\n")
    argv = [str(a) for a in [plan, text, "--name", "t", "--out-dir", out]]
    assert report_transfer.main(argv) == 0
    first = json.loads((out / "t.json").read_text())["runs"]
    shutil.rmtree(plan / "seeds" / "clm_bp" / "seed0" / "best")
    assert report_transfer.main(argv) == 0
    again = json.loads((out / "t.json").read_text())["runs"]
    assert [(r["seed"], r["scored"], r["text_ppl"]) for r in again] == [
        (0, "earlier", first[0]["text_ppl"]),
        (1, "now", pytest.approx(first[1]["text_ppl"], rel=1e-9)),
    ]
    assert "| clm_bp | 0 | completed (earlier) |" in (out / "t.md").read_text()
    (plan / "seeds" / "clm_bp" / "seed0" / "metrics.json").write_text(
        json.dumps({"status": "completed", "test_ppl": 39.0})
    )
    assert report_transfer.main(argv) == 0
    assert [r["seed"] for r in json.loads((out / "t.json").read_text())["runs"]] == [1]
    (plan / "seeds" / "clm_bp" / "seed0" / "metrics.json").write_text(
        json.dumps({"status": "completed", "test_ppl": 40.0})
    )
    (out / "t.json").write_text(json.dumps({"text_sha256": "0" * 64, "runs": first}))
    assert report_transfer.main(argv) == 0
    assert [r["seed"] for r in json.loads((out / "t.json").read_text())["runs"]] == [1]
    # a report written before the hash was recorded: matched on the text's path and sentence count
    (out / "t.json").write_text(json.dumps({"text": str(text), "sentences": 2, "runs": first}))
    assert report_transfer.main(argv) == 0
    assert [r["seed"] for r in json.loads((out / "t.json").read_text())["runs"]] == [0, 1]
    (out / "t.json").write_text(json.dumps({"text": str(text), "sentences": 3, "runs": first}))
    assert report_transfer.main(argv) == 0
    assert [r["seed"] for r in json.loads((out / "t.json").read_text())["runs"]] == [1]


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


@pytest.mark.parametrize("earlier", ["{not json", "[1, 2]", '{"text_sha256": "x", "runs": [{"seed": 0}]}'])
def test_an_unreadable_earlier_report_is_one_line_and_stays(earlier, tmp_path, capsys):
    """The report's own earlier JSON is read back to keep seeds whose model is gone: a damaged one is refused."""
    text, out = tmp_path / "text.txt", tmp_path / "reports"
    text.write_text("a b c .\n")
    (tmp_path / "plan" / "seeds").mkdir(parents=True)
    out.mkdir()
    (out / "t.json").write_text(earlier)
    if "text_sha256" in earlier:  # the same text's hash, so that its rows are read
        (out / "t.json").write_text(earlier.replace('"x"', f'"{hashlib.sha256(text.read_bytes()).hexdigest()}"'))
    before = (out / "t.json").read_text()
    argv = [str(a) for a in [tmp_path / "plan", text, "--name", "t", "--out-dir", out]]
    assert report_transfer.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: '{out / 't.json'}' is not a report this tool wrote (") and err.count("\n") == 1
    assert err.endswith("); move it aside to start it afresh\n")
    assert (out / "t.json").read_text() == before and sorted(p.name for p in out.iterdir()) == ["t.json"]


def test_an_earlier_report_that_cannot_be_read_is_one_line_and_stays(tmp_path, capsys, monkeypatch):
    """An earlier report the user may not read (permissions, a failing disk) is refused before anything is written."""
    text, out = tmp_path / "text.txt", tmp_path / "reports"
    text.write_text("a b c .\n")
    (tmp_path / "plan" / "seeds").mkdir(parents=True)
    out.mkdir()
    (out / "t.json").write_text("{}")
    read_text = Path.read_text

    def refuse(self, *a, **k):
        if self.name == "t.json":
            raise PermissionError(13, "Permission denied")
        return read_text(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", refuse)
    argv = [str(a) for a in [tmp_path / "plan", text, "--name", "t", "--out-dir", out]]
    assert report_transfer.main(argv) == 2
    assert capsys.readouterr().err == f"error: cannot read '{out / 't.json'}': Permission denied\n"
    assert sorted(p.name for p in out.iterdir()) == ["t.json"]


def test_an_out_dir_it_cannot_write_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    text = tmp_path / "text.txt"
    text.write_text("a b c .\n")
    (tmp_path / "plan" / "seeds").mkdir(parents=True)
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(report_transfer, "finished_runs", lambda plan_dir: pytest.fail("scored before the check"))
    argv = [str(a) for a in [tmp_path / "plan", text, "--name", "t", "--out-dir", tmp_path / "afile"]]
    assert report_transfer.main(argv) == 2
    assert capsys.readouterr().err == f"error: cannot create --out-dir '{tmp_path / 'afile'}': File exists\n"
