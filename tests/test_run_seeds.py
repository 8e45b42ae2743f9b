"""scripts/run_seeds.py with a stand-in launcher: every seed recorded (diverged and crashed included), the sweep goes
on, and a re-run skips finished seeds and resumes the rest."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_seeds", ROOT / "scripts" / "run_seeds.py")
run_seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_seeds)

FAKE = '''
import json, sys
from pathlib import Path
args = sys.argv[2:]  # argv[1] is train_lm.py
seed, out = int(args[args.index("--seed") + 1]), Path(args[args.index("--output-dir") + 1])
with open(Path(__file__).with_name("calls.txt"), "a") as f:
    f.write(f"{seed} {'--resume' in args}\\n")
out.mkdir(parents=True, exist_ok=True)
if seed == 2:  # crashes before writing anything final, leaving a complete checkpoint
    (out / "checkpoints" / "last").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / "last" / "pclm_state.json").write_text("{}")
    sys.exit(3)
status = "diverged" if seed == 1 else "completed"
(out / "metrics.json").write_text(json.dumps({"status": status, "test_ppl": 100.0 + seed}))
sys.exit(1 if status == "diverged" else 0)
'''


def test_seeds_recorded_skipped_and_resumed(tmp_path):
    fake = tmp_path / "fake_launcher.py"
    fake.write_text(FAKE)
    argv = ["--task", "clm", "--algo", "ipc", "--seeds", "0-2", "--output-dir", str(tmp_path / "runs"),
            "--launcher", f"{sys.executable} {fake}"]
    assert run_seeds.main(argv) == 0
    summary = json.loads((tmp_path / "runs" / "seeds.json").read_text())
    assert {s: v["status"] for s, v in summary.items()} == {"0": "completed", "1": "diverged", "2": "crashed"}
    assert run_seeds.main(argv) == 0  # again: seeds 0 and 1 are final, seed 2 resumes from its checkpoint
    calls = (tmp_path / "calls.txt").read_text().split("\n")
    assert calls[:3] == ["0 False", "1 False", "2 False"] and calls[3] == "2 True" and calls[4:] == [""]


def test_parse_seeds_and_shards():
    assert run_seeds.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
