# customer-segmentation: `make run` serves the app, `make test` runs every check.
# Python 3.12 or newer (pymc-marketing 1.x needs it): python3.12 on PATH, else pyenv's 3.12,
# else python3 when it is new enough. `make PYTHON=/path/to/python3.12` to choose.
PY312_CANDIDATES = python3.12 $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.12*/bin/python3) python3
PYTHON ?= $(firstword $(foreach p,$(PY312_CANDIDATES),$(shell $(p) -c 'import sys; print(sys.version_info >= (3, 12))' 2>/dev/null | grep -q True && echo $(p))))
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8050
# Packages go in with uv (from PyPI, into the venv): a fresh clone's venv in ~5 s from uv's cache
# instead of ~65 s with pip. Not compiled to bytecode up front (25 s for all of the venv's 1.1 GB):
# Python compiles each module the first time something imports it and keeps the bytecode, also
# where the shell says not to (below). uv reads no pip configuration: where PyPI is reached only
# through a mirror set up for pip, it fails and pip installs instead.
INSTALL = { test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv; } && \
  $(BIN)/uv pip install -q --python $(BIN)/python $(1) || \
  { echo "uv could not install $(1): pip instead" >&2; $(BIN)/python -m pip install -q $(1); }
# Inside $(call INSTALL,...) a comma would end the argument: extras are joined by $(comma).
comma := ,
# mypy's cache outside the clone: it checks each cached module against its file, so a fresh
# clone re-checks only what differs instead of all of pandas', numpy's and SQLAlchemy's stubs.
# Without a home directory, .mypy_cache in the clone.
CACHE_HOME := $(or $(XDG_CACHE_HOME),$(if $(HOME),$(HOME)/.cache))
export MYPY_CACHE_DIR ?= $(if $(CACHE_HOME),$(CACHE_HOME)/customer-segmentation/mypy,.mypy_cache)
SCALE  ?= M
# The project's processes keep the bytecode of what they import (the venv and the clone are the
# project's own), even where the shell sets PYTHONDONTWRITEBYTECODE: otherwise every start of the
# server, every CLI command and each of the test suite's processes compiles its imports again
# (~7 s), and pytest rewrites the asserts of Dash's modules again (its pytest plugin, 3 s).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test test-models test-spark lint bench bench-smoke clean help browser axe

help:
	@echo "make run    create .venv, set up the database, import the sample, serve on :$(PORT)"
	@echo "           (with the scheduler process beside the server; Ctrl-C stops both)"
	@echo "make test   install test tools, Chromium, axe-core, find PostgreSQL, run lint + the whole suite"
	@echo "make test-models  the tests that fit the prediction models (CDNOW backtest; ~2 min)"
	@echo "make test-spark  install .[spark], Java and the JDBC driver, run the Spark engine's tests"
	@echo "make bench  run the benchmark suite at SCALE=S|M|L|XL (default M; see bench/README.md)"

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.12 found (tried $(PY312_CANDIDATES));" \
	  "install it, or run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	@# A venv of an older Python (before the move to 3.12) is made again.
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || \
	  { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(call INSTALL,-e .)
	touch $@

$(BIN)/.test-installed: $(BIN)/.installed
	$(call INSTALL,-e '.[test]')
	touch $@

$(BIN)/.spark-installed: $(BIN)/.test-installed
	$(call INSTALL,-e '.[test$(comma)spark]')
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(call INSTALL,-e '.[bench]')
	touch $@

run: export CUSTSEG_ENV := $(or $(CUSTSEG_ENV),development)
# `custseg serve` starts `custseg scheduler` (queued and periodic jobs) as a child process and
# stops it when the server stops.
run: $(BIN)/.installed
	$(BIN)/custseg bootstrap
	$(BIN)/custseg serve --port $(PORT)

browser:
	@.ci/ensure-chromium

# axe-core, pinned and checked, into build/: the accessibility check of the browser tests.
axe:
	@.ci/ensure-axe >/dev/null

lint: $(BIN)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy analytics db config webapp

# Four processes, each given whole test files, in the order the suite lists them (the browser
# files first: see tests/conftest.py), not by number of tests.
test: $(BIN)/.test-installed browser axe lint
	TEST_DATABASE_URL="$$(.ci/ensure-postgres)" && export TEST_DATABASE_URL && \
	  TEST_MYSQL_URL="$$(.ci/ensure-mariadb)" && export TEST_MYSQL_URL && \
	  TEST_REDIS_URL="$$(.ci/ensure-redis)" && export TEST_REDIS_URL && \
	  $(BIN)/pytest -m "not spark and not models" \
	    -n 4 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The tests that fit the prediction models on real data (marker `models`: the CDNOW backtest,
# the prediction stage of a refit; pymc-marketing compiles each model, ~2 minutes in all). CI
# runs them after `make test`.
test-models: $(BIN)/.test-installed
	TEST_DATABASE_URL="$$(.ci/ensure-postgres)" && export TEST_DATABASE_URL && \
	  $(BIN)/pytest -m models $(PYTEST_ARGS)

# The Spark engine of the refit in local mode against the local engine (tests marked `spark`,
# a few minutes: CI runs it after `make test`). Java and the PostgreSQL JDBC driver come from
# Debian when missing (.ci/ensure-spark), pyspark from the `spark` extra.
test-spark: $(BIN)/.spark-installed
	@.ci/ensure-spark
	TEST_DATABASE_URL="$$(.ci/ensure-postgres)" && export TEST_DATABASE_URL && \
	  $(BIN)/pytest -m spark tests/test_spark_refit.py $(PYTEST_ARGS)

# A fresh database per run on the PostgreSQL that .ci/ensure-postgres finds (or starts).
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench --scale $(SCALE) --out bench/results/$(SCALE).json \
	  --database-url "$$(.ci/ensure-postgres)" $(BENCH_ARGS)
	$(BIN)/python -m bench.report

# CI: scale S once, so the suite cannot rot; it checks the result keys, never a time.
bench-smoke: $(BIN)/.bench-installed
	$(BIN)/python -m bench --scale S --repeat 1 --out build/bench-S.json \
	  --database-url "$$(.ci/ensure-postgres)"

clean:
	rm -rf $(VENV) instance/*.db
