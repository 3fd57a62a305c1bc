# Two commands a new user needs: `make run` (the app) and `make test` (the suite).
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench compare soak proof screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run` starts the desktop app with its engine on 127.0.0.1:8402 (ARGS="serve" runs
# the engine headless; any other subcommand works too, e.g. ARGS="status").
ARGS ?=
run: $(STAMP)
	$(BIN)/aiwallet $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/clients.py
	$(BIN)/python bench/reserve.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/gui.py --quick
	$(BIN)/python bench/prompt.py

# aiwallet vs LiteLLM's proxy (installs litellm[proxy] into bench/.venv-litellm on first use).
compare: $(STAMP)
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/compare.py --policy

soak: $(STAMP)
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/soak.py --postgres

# Two engines (two data dirs) on one throw-away PostgreSQL ledger, their budgets shared: the
# tests (PostgreSQL required), then the benchmark (one engine vs two together, and a tight
# shared budget hammered from both; it exits 1 on any overspend).
.PHONY: shared-pg
shared-pg: $(STAMP)
	AIWALLET_REQUIRE_POSTGRES=1 $(BIN)/pytest -q tests/engine/test_shared_postgres.py
	$(BIN)/python bench/shared_pg.py

# The long modes of the proof suite: 10x fuzzing (400 hostile-provider examples for the hard
# cap), the 200-way races, 20 crash-loop cycles and a 30-minute soak on both backends (SQLite
# and a throw-away PostgreSQL, which must be installed: AIWALLET_REQUIRE_POSTGRES=1), and the
# LiteLLM comparison.
proof: $(STAMP)
	AIWALLET_REQUIRE_POSTGRES=1 AIWALLET_FUZZ_LONG=1 AIWALLET_CRASH_LOOP_CYCLES=20 \
		QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q tests/fuzz tests/engine/test_crash_loop.py \
		tests/engine/test_budgets.py tests/engine/test_race_shapes.py \
		tests/engine/test_fault_matrix.py tests/engine/test_hard_cap_property.py
	$(BIN)/python bench/soak.py --minutes 30
	$(BIN)/python bench/soak.py --minutes 30 --postgres
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/compare.py --policy

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
