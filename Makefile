# The two set-up commands of the README. Both create (or reuse) .venv, install torch 2.13.0 (CPU) first so no
# other requirement pulls a CUDA build, then this package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pclm-installed

.PHONY: demo test install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/accelerate launch scripts/train_lm.py --algo ipc --config configs/demo.yaml --output-dir runs/demo --overwrite

test: $(STAMP)
	$(VENV)/bin/ruff check pclm scripts tests benchmarks experiments tools
	$(VENV)/bin/ruff format --check pclm scripts tests benchmarks experiments tools
	$(PY) -m pytest -q
