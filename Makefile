# Two commands a new user needs: `make run` (the app) and `make test` (the suite).
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Until the desktop window lands, the app is the engine: `make run` starts it on
# 127.0.0.1:8402 (ARGS="..." runs any other subcommand instead, e.g. ARGS="status").
ARGS ?= serve
run: $(STAMP)
	$(BIN)/aiwallet $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/clients.py
	$(BIN)/python bench/reserve.py
	$(BIN)/python bench/proxy.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
