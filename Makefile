# One virtual environment, installed once per change of pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench report clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned: an unpinned torch may pull a multi-GB CUDA build; 2.13.0 is the CPU build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,dashboard]"
	touch $(STAMP)

install: $(STAMP)

## The main job: the seed case study (4 configurations x 30 repeats x 4000 epochs) into sweeps.db.
run: $(STAMP)
	$(BIN)/sweeper run search_spaces/seed_case_study.yaml
	$(BIN)/sweeper report seed-case-study

## Every test, on two pytest-xdist workers (the Ray tests in one of them, tests/conftest.py's SERIAL). While
## working: `$(BIN)/python -m pytest -m "not slow"` (the fast tier), or one folder or file.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

## Lint and format check, as CI runs them (settings: pyproject.toml [tool.ruff]); `ruff format` fixes the format.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## W1: reference loop vs population trainer, side by side (DEVICE=cuda on a GPU machine).
bench: $(STAMP)
	$(BIN)/sweeper bench --device $(or $(DEVICE),cpu)

clean:
	rm -rf $(VENV) sweeps.db sweeps.db-wal sweeps.db-shm .pytest_cache
