# Pentad — `make help` lists every target.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Every `pentad` process (the tests start hundreds) would otherwise compile all of Pentad and its
# libraries again: with PYTHONDONTWRITEBYTECODE set, as on some CI images, nothing is cached in
# __pycache__ and each start pays seconds of compiling. The install also compiles the libraries.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install run test test-fast lint format bench cluster clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/uv || { python3 -m venv $(VENV) && $(BIN)/pip install -q "uv==$(UV_VERSION)"; }
	$(BIN)/uv sync --frozen --quiet --compile-bytecode
	@touch $(STAMP)

# Front-end libraries for /static/vendor; --ignore-scripts: no package runs code (or phones home) at install.
$(WEB_STAMP): web/package.json web/package-lock.json
	npm ci --prefix web --ignore-scripts --no-audit --no-fund
	@touch $(WEB_STAMP)

install: $(STAMP) $(WEB_STAMP) ## Create .venv and install the locked dependencies

run: install ## Migrate the database under ./var, create the first admin, serve on http://127.0.0.1:8000
	$(BIN)/pentad migrate
	$(BIN)/pentad serve

test: install ## Run the whole test suite (SQLite, plus PostgreSQL and MariaDB when reachable)
	$(BIN)/pytest

test-fast: install ## Run the test suite on SQLite only
	PENTAD_TEST_DATABASES=sqlite $(BIN)/pytest -m "not browser and not slow"

lint: install ## ruff (lint + format check), mypy --strict, import-linter, tsc (the streams browser SDK)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	web/node_modules/.bin/tsc --noEmit -p web/tsconfig.json

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install ## Run the benchmarks; results go to bench/results/
	bash bench/run

cluster: install ## 3 nodes + 2 workers behind nginx on PostgreSQL and Redis, until Ctrl-C (needs nginx, redis-server)
	$(BIN)/python -m tests.cluster

clean: ## Remove the virtual environment and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
