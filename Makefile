# `make run` and `make test` set up .venv on first use (pip install -e '.[dev,tracking]'), then do their job.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tracking]'
	touch $(STAMP)

run: setup  ## train the seed CNN on the bundled digits (offline, under a minute)
	$(BIN)/python -m trainlab trainer.max_epochs=8

# Two workers, whole files each (a module's fixtures, like a trained sweep, are built once); every test
# process and the CLI runs it starts use one thread (tests/conftest.py): on 2 cores that is 2.2x the
# throughput of two runs fighting over two threads each.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile

test: setup  ## the whole suite, end-to-end CLI runs included
	$(PYTEST)

test-fast: setup  ## unit tests only
	$(PYTEST) -m "not slow"

lint: setup  ## style, formatting, and the one-way import contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
