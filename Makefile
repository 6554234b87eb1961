# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install core + standard plugins, run the main job
#   make test   the same set-up, then the whole test suite
# Re-running skips what is already installed (stamp files in .venv).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
LLMOS  := $(VENV)/bin/llmos
# torch first, pinned: pip then takes the local CPU wheel instead of a multi-GB CUDA build
TORCH  := torch==2.13.0
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP  := $(VENV)/.llmos-installed
export LLMOS_HOME ?= $(CURDIR)/.llmos-home
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test bench sysdeps clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo   set up and run the main job (pipelines/quickstart.toml)"
	@echo "make test   set up and run every test (core and plugins)"
	@echo "make bench  set up and run the benchmarks (figures -> docs/benchmarks.md)"
	@echo "make clean  remove .venv and the demo's LLMOS_HOME"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.torch: | $(PY)
	$(PIP) install -q $(TORCH)
	touch $@

# tests/postgres: test support (a PostgreSQL server for the tests), not part of the core
$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) tests/postgres/pyproject.toml $(VENV)/.torch
	$(PIP) install -q --no-build-isolation -e '.[dev]' -e tests/postgres $(foreach d,$(PLUGIN_DIRS),-e '$(d)[test]') $(TORCH)
	touch $@

install: $(STAMP)

# Servers and browsers the tests drive for real (PostgreSQL, Chromium); idempotent.
sysdeps:
	@bash .ci/sysdeps.sh

demo: install
	$(LLMOS) plugin list
	@if [ -f pipelines/quickstart.toml ] && $(LLMOS) run --help >/dev/null 2>&1; then \
		$(LLMOS) run pipelines/quickstart.toml; \
	else $(LLMOS) components; fi

test: install sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .llmos-home
