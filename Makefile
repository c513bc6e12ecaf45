# The two commands README gives: `make demo` and `make test`. Each creates .venv if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench bench-peers clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/evenflow run examples/demo.py:demo_pipeline
	$(BIN)/evenflow runs show latest

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine events projections
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks

# Peers in their own virtual environments, from PyPI. A peer that fails to install is reported
# by `python -m benchmarks.peers` in one line; the others still run.
.venv-prefect/.installed:
	-$(PY) -m venv .venv-prefect && .venv-prefect/bin/python -m pip install --quiet 'prefect>=3,<4' \
		&& touch $@

.venv-dagster/.installed:
	-$(PY) -m venv .venv-dagster && .venv-dagster/bin/python -m pip install --quiet dagster \
		&& touch $@

bench-peers: $(VENV)/.installed .venv-prefect/.installed .venv-dagster/.installed
	$(BIN)/python -m benchmarks.peers

clean:
	rm -rf $(VENV) .venv-prefect .venv-dagster
