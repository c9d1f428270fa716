# pgbell: `make run` starts everything on an embedded PostgreSQL, `make test`
# runs the whole suite. Both set themselves up on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYDIRS := $(wildcard server tests bench db examples)
STAMP  := $(VENV)/.installed-stamp
NPM    ?= npm
# the npm package's tools (TypeScript, esbuild, React), as client/package-lock.json pins them
CLIENT_STAMP := client/node_modules/.installed-stamp
# the React example page, built into the folder pgbell serves at /static/
REACT_PAGE   := client_demo/react/app.js

.PHONY: run test lint format bench bench-fanout bench-writers venv client clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[embedded,test,bench]'
	touch $(STAMP)

venv: $(STAMP)

$(CLIENT_STAMP): client/package.json client/package-lock.json
	cd client && $(NPM) ci --no-audit --no-fund --loglevel=error >/dev/null
	touch $(CLIENT_STAMP)

$(REACT_PAGE): $(CLIENT_STAMP) $(wildcard client/scripts/*.mjs client/src/*.js client/examples/react/*) \
		$(wildcard client_demo/pgbell-client.js client_demo/pgbell-client/*.js)
	cd client && node scripts/build-example.mjs

client: $(REACT_PAGE)

# The React example page needs Node.js to build; without it, make run serves
# the plain demo alone (a newcomer needs nothing but Python).
run: $(STAMP)
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory client; \
	else echo "make: no npm here: the React example page is left out"; fi
	$(BIN)/pgbell run

test: $(STAMP) client
	$(BIN)/pytest

# nginx, PgBouncer and systemd-analyze from Debian, for tests/test_deployment.py
# and tests/test_check.py: installed only when missing, as root
DEB_TOOLS := /usr/sbin/nginx /usr/sbin/pgbouncer /usr/bin/systemd-analyze

$(DEB_TOOLS) &:
	@echo "make: installing nginx, pgbouncer and systemd (Debian) for the deployment tests"
	@apt-get update -qq
	@DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx pgbouncer systemd >/dev/null

test: $(DEB_TOOLS)

lint: $(STAMP)
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/ruff format --check $(PYDIRS)

format: $(STAMP)
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/ruff check --fix $(PYDIRS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

# what pgbell costs the writers' commits, server and sockets running (bench/writers_cost.py);
# `make bench` runs it too
bench-writers: $(STAMP)
	$(BIN)/python bench/writers_cost.py $(ARGS)

# N idle sockets and one broadcast: pgbell beside a bare aiohttp floor (bench/fanout.py)
bench-fanout: $(STAMP)
	$(BIN)/python bench/fanout.py $(ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache client/node_modules client/dist client_demo/react
