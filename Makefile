# nudge — the two commands of the README, and a few helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCALE  ?= 10k

.PHONY: demo test install postgres bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Build the demo store (SQLite, synthetic shop) and print a dry run of the four campaigns.
demo: $(STAMP)
	$(BIN)/nudge demo

## Run the whole test suite, PostgreSQL-backed tests included (the suite starts its own server).
test: $(STAMP) postgres
	$(BIN)/python -m pytest

## Make sure PostgreSQL server binaries exist (installs Debian's package when run as root).
postgres:
	@sh scripts/ensure-postgres.sh

bench: $(STAMP) postgres
	$(BIN)/python -m bench --scale $(SCALE)

clean:
	rm -rf $(VENV) nudge.db nudge.db-* outbox .pytest_cache
