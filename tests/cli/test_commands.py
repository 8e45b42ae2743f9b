"""`pclm-run` and `pclm-report`: the first argument picks a module of pclm.cli, which gets every later argument
unchanged; no subcommand, an unknown one or an unknown flag before it is one `error:` line and exit 2."""

from __future__ import annotations

import importlib

import pytest
import yaml

from pclm.cli import SUBCOMMANDS, report, run, run_plan
from tests.conftest import TINY

DISPATCHERS = {"pclm-run": run, "pclm-report": report}
PAIRS = [(prog, name) for prog in DISPATCHERS for name in SUBCOMMANDS[prog]]


@pytest.mark.parametrize("prog, name", PAIRS, ids=[f"{p} {n}" for p, n in PAIRS])
def test_a_subcommand_gets_the_rest_of_the_arguments(monkeypatch, prog, name):
    dispatcher = DISPATCHERS[prog]
    module = importlib.import_module(SUBCOMMANDS[prog][name][0])
    seen = []
    monkeypatch.setattr(module, "main", lambda argv: seen.append(argv) or 7)
    rest = ["--name", "x", "runs/a", "--", "--help", "train.lr=1"]
    assert dispatcher.main([name, *rest]) == 7
    assert seen == [rest]


def test_pclm_run_plan_is_run_plan(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "fixed": TINY,
                "tune": {"epochs": 1, "seed": 0},
                "seeds": {"epochs": 1},
                "methods": {"clm_bp": {"task": "clm", "algo": "bp", "grid": {"train.lr": [1e-3, 3e-3]}, "seeds": 0}},
            }
        )
    )
    argv = [str(plan), "--output-dir", str(tmp_path / "out"), "--dry-run"]
    assert run_plan.main(argv) == 0
    direct = capsys.readouterr().out
    assert run.main(["plan", *argv]) == 0
    assert capsys.readouterr().out == direct and "tune/clm_bp" in direct
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("prog", DISPATCHERS)
@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: command"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["--no-such-flag", "plan"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_a_bad_subcommand_is_one_error_line(capsys, prog, argv, message):
    with pytest.raises(SystemExit) as exit_:
        DISPATCHERS[prog].main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2
    assert [line for line in err if "error:" in line] == [err[-1]] and message in err[-1], err
