# pgbell: `make run` starts everything on an embedded PostgreSQL, `make test`
# runs the whole suite. Both set themselves up on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint format bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/pgbell run

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check server tests bench db
	$(BIN)/ruff format --check server tests bench db

format: $(STAMP)
	$(BIN)/ruff format server tests bench db
	$(BIN)/ruff check --fix server tests bench db

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache
