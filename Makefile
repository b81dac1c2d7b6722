# Audience Exchange: `make run` and `make test` are the only commands a new machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install run test test-pythons openapi docs bench lint chromium screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# make run [PORT=8080] [HOST=127.0.0.1]
run: install
	$(BIN)/exchange db upgrade
	$(BIN)/exchange demo $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

# ruff and mypy first: a lint or type error fails the run before the (longer) test suite starts
test: install chromium lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	scripts/other-pythons.sh

# Quick pass (unit, api, OpenAPI drift) on each other supported Python (3.11-3.13) found here.
test-pythons: install
	scripts/other-pythons.sh

openapi: install
	$(BIN)/exchange openapi --out openapi/openapi.json

# configuration tables (README, docs/deploy.md) and docs/commands.md, generated from the code
docs: install
	$(BIN)/python -m exchange.docgen

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check exchange tests bench

# strict over the engine and its transport and storage ([tool.mypy] files in pyproject.toml)
typecheck: install
	$(BIN)/mypy

# Browser tests drive Debian's Chromium; install it when missing (needs root and apt).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: /usr/bin/chromium missing and cannot apt-get; browser tests will be skipped"; fi; \
	fi

screenshots: install chromium
	$(BIN)/python -m exchange.web.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .venv-3.* var .pytest_cache
