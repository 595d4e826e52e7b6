# customer-segmentation: `make run` serves the app, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8050

.PHONY: run test lint bench clean help

help:
	@echo "make run    create .venv, set up the database, import the sample, serve on :$(PORT)"
	@echo "make test   install test tools, Chromium, find PostgreSQL, run lint + the whole suite"
	@echo "make bench  run the benchmark suite (see bench/README.md)"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(BIN)/.test-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: export CUSTSEG_ENV := $(or $(CUSTSEG_ENV),development)
run: $(BIN)/.installed
	$(BIN)/custseg bootstrap
	$(BIN)/custseg serve --port $(PORT)

browser:
	@.ci/ensure-chromium

lint: $(BIN)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy analytics db config

test: $(BIN)/.test-installed browser lint
	TEST_DATABASE_URL="$$(.ci/ensure-postgres)" && export TEST_DATABASE_URL && \
	  $(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance/*.db
