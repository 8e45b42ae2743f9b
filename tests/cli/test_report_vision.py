"""`pclm-report vision` (pclm/cli/report_vision.py): per-cell statistics (mean and the paper's ± = half the population
std, in percent) over finished seeds, missing/diverged seeds listed but not averaged, the paper beside, hand-written
text kept."""

from __future__ import annotations

import json
from pathlib import Path

from pclm.cli import report_vision


def _run(path: Path, status: str, acc: float | None) -> str:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"status": status, "test_accuracy": acc, "seed": 0}))
    return str(path)


def test_cells_stats_and_kept_text(tmp_path, capsys):
    a = [_run(tmp_path / f"bp{i}", "completed", acc) for i, acc in enumerate([0.90, 0.92])]
    b = [
        _run(tmp_path / "ipc0", "completed", 0.95),
        _run(tmp_path / "ipc1", "diverged", None),
        str(tmp_path / "never_ran"),
        _run(tmp_path / "ipc3", "completed", 0.5),
    ]
    (tmp_path / "ipc3" / "metrics.json").write_text("{")  # corrupt: listed, never averaged
    out = tmp_path / "rep" / "t"
    out.parent.mkdir()
    out.with_suffix(".md").write_text("# hand-written\n<!-- generated -->\nSTALE-TABLE\n<!-- /generated -->\nfooter\n")
    assert (
        report_vision.main(
            [
                "--cell",
                "MLP/BP=" + ",".join(a),
                "--cell",
                "MLP/iPC=" + ",".join(b),
                "--paper",
                "MLP/BP=98.26±0.12",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["table"]["MLP"]["BP"]["paper"] == "98.26±0.12" and data["table"]["MLP"]["iPC"]["paper"] is None
    statuses = [seed["status"] for seed in data["table"]["MLP"]["iPC"]["seeds"]]
    assert statuses == ["completed", "diverged", "missing", "unreadable"]
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# hand-written\n") and md.endswith("footer\n") and "STALE-TABLE" not in md
    assert "91.00 ± 0.50" in md  # mean of 90 and 92; population std 1.0, halved
    assert "95.00 (1/4 finished)" in md  # one seed: no ±; diverged, missing and corrupt seeds counted, not averaged
    assert report_vision.ORDER_NOTE in md  # the order column never stands without what it does not control


def test_bad_cell_is_one_line_error(tmp_path, capsys):
    assert report_vision.main(["--cell", "no-slash=dir", "--output", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == "error: --cell must be ROW/COLUMN=VALUE, got 'no-slash=dir'\n"
    assert not (tmp_path / "x.json").exists()


def test_an_output_that_cannot_be_written_is_one_line_and_writes_nothing(tmp_path, capsys):
    """A folder where the .md goes, or a file where the output folder goes: refused before the .json is written."""
    run = _run(tmp_path / "bp0", "completed", 0.9)
    (tmp_path / "x.md").mkdir()
    (tmp_path / "file").write_text("")
    cases = [
        (tmp_path / "x", f"error: cannot write '{tmp_path / 'x.md'}': a folder\n"),
        (tmp_path / "file" / "x", f"error: cannot create the folder of --output '{tmp_path / 'file'}': File exists\n"),
    ]
    for out, message in cases:
        assert report_vision.main(["--cell", f"MLP/BP={run}", "--output", str(out)]) == 2
        assert capsys.readouterr().err == message
        assert not out.with_suffix(".json").exists()
