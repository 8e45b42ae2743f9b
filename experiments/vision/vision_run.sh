# Sourced by the reports' vision run scripts (after they cd to the repository root): `run <folder> <train_vision
# args...>` trains one run in <folder>, one thread, its log beside it in <folder>.log. A folder whose metrics.json
# holds a final status is skipped, one with a checkpoint is resumed, anything else starts over. Resumable scripts.
run() {
  local dir=$1; shift
  local st; st=$(.venv/bin/python -c "from pclm.runs import run_status; import sys; print(run_status(__import__('pathlib').Path(sys.argv[1])))" "$dir")
  case $st in completed|early_stopped|max_steps|diverged) echo "skip $dir ($st)"; return;; esac
  local mode=--overwrite; [ -d "$dir/checkpoints" ] && mode=--resume
  echo "$(date -u +%H:%M:%S) start $dir"
  .venv/bin/python scripts/train_vision.py "$@" --threads 1 --output-dir "$dir" $mode > "$dir.log" 2>&1
  echo "$(date -u +%H:%M:%S) end $dir rc=$?"
}
