# nudge — the two commands of the README, and a few helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCALE  ?= 10k
BENCH_ARGS ?=

.PHONY: demo test lint install postgres chromium bench clean wheel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

## Build the demo store (SQLite, synthetic shop) and print a dry run of the four campaigns.
demo: $(STAMP)
	$(BIN)/nudge demo

## Run the whole test suite, PostgreSQL-backed tests included (the suite starts its own server).
test: $(STAMP) postgres chromium
	$(BIN)/python -m pytest

## Lint: ruff (rules + format), mypy on engine/ and connectors/, import layers, module and function sizes.
lint: $(STAMP)
	$(BIN)/ruff check engine connectors tests bench scripts
	$(BIN)/ruff format --check engine connectors tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_sizes.py

## Make sure PostgreSQL server binaries exist (installs Debian's package when run as root).
postgres:
	@sh scripts/ensure-postgres.sh

## Make sure a headless Chromium exists for the preview's browser test (Debian's package when root).
chromium:
	@sh scripts/ensure-chromium.sh

## A wheel for a production install (README "Installing on a server"): dist/nudge-*.whl
wheel:
	$(PYTHON) -m pip wheel --no-deps --quiet -w dist .

bench: $(STAMP) postgres
	$(BIN)/python -m bench --scale $(SCALE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) nudge.db nudge.db-* outbox .pytest_cache dist build
