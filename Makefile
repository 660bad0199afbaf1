# Execution gateway -- developer entry points.
#
#   make install  Idempotent; fast when nothing changed. Creates .venv (python3 -m venv;
#                 as root, apt-get installs python3-venv if venv creation fails), pip
#                 installs requirements-dev.txt (only when a requirements file is newer
#                 than .venv/.installed), runs `npm ci` in tools/firestore-emulator (only
#                 when node_modules is missing or older than package-lock.json; as root,
#                 apt-get installs nodejs/npm if `node` is missing) and makes sure Postgres
#                 is available: EXEC_TEST_PG_DSN set, or something on 127.0.0.1:5432, or an
#                 initdb binary for a throwaway cluster -- otherwise, as root, apt-get
#                 installs Debian's `postgresql` package. The console's browser tests need
#                 /usr/bin/chromium: as root, apt-get installs Debian's `chromium` if missing.
#   make lint     ruff check + ruff format --check (backend, tests) and mypy backend/execution backend/audit.
#   make test     THE test command: install, lint, then the whole pytest suite.
#                 Extra pytest arguments: make test PYTEST_ARGS='-k foo -x'.
#   make drill    kill-switch drill: live mode against the Alpaca stand-in under load, flips
#                 the ConfigMap-style file, reports time to first refusal and orders routed
#                 after the flip (must be 0). DRILL_ARGS='--rate 40 --duration 6 --json f'.
#   make bench-console  page timings of the console with 10,000 decisions in the day
#                 (docs/CONSOLE.md). CONSOLE_BENCH_ARGS='--decisions 10000 --rounds 5'.
#   make bench    the benchmark (docs/PERFORMANCE.md): latency at fixed rates, the I/O floor,
#                 round trips and CPU per intent, kill-switch reaction; a few minutes.
#                 BENCH_ARGS='--duration 5 --out bench-results.json'.
#   make fuzz     a longer fuzz campaign than `make test`: tests/contract with five times the
#                 inputs (about 16,500), new ones each run, failures kept in .local/hypothesis.
#                 Stops by itself (4 to 6 minutes on 2 shared cores). FUZZ_ARGS='-x -k execute'.
#   make run      install, then run the gateway locally (Firestore emulator + Postgres +
#                 gunicorn on 127.0.0.1:$PORT, default 8080); see backend/devtools/run_local.py.
#   make fmt      ruff format + ruff check --fix (rewrites files).
#   make help     Print this help.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
EMU_DIR := tools/firestore-emulator
EMU_STAMP := $(EMU_DIR)/node_modules/.installed
LINT_PATHS := backend tests
PYTEST_ARGS ?=
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help install lint test run drill bench bench-console fuzz fmt postgres-available browser-available

help:
	@sed -n '1,/^$$/{s/^# \{0,1\}//;p}' $(firstword $(MAKEFILE_LIST))

install: $(VENV_STAMP) $(EMU_STAMP) postgres-available browser-available

# --- Python virtualenv ---------------------------------------------------------------------
$(VPY):
	@echo "[make] creating $(VENV) with $(PYTHON)"
	@if ! $(PYTHON) -m venv $(VENV); then \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "[make] python3 -m venv failed; installing python3-venv with apt-get"; \
	    $(APT_GET) update && $(APT_GET) install -y python3-venv; \
	    $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "[make] '$(PYTHON) -m venv' failed. Install python3-venv (e.g. sudo apt-get install python3-venv) and re-run make install." >&2; \
	    exit 1; \
	  fi; \
	fi

$(VENV_STAMP): requirements.txt requirements-dev.txt | $(VPY)
	@echo "[make] installing Python dependencies into $(VENV)"
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

# --- Firestore emulator (Node) ---------------------------------------------------------------
$(EMU_STAMP): $(EMU_DIR)/package-lock.json $(EMU_DIR)/package.json
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "[make] node/npm missing; installing nodejs and npm with apt-get"; \
	    $(APT_GET) update && $(APT_GET) install -y nodejs npm; \
	  else \
	    echo "[make] Node.js (node + npm) is required for the Firestore emulator; install it (e.g. sudo apt-get install nodejs npm) and re-run make install." >&2; \
	    exit 1; \
	  fi; \
	fi
	@echo "[make] installing the pinned Firestore emulator (npm ci in $(EMU_DIR))"
	cd $(EMU_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# --- Postgres --------------------------------------------------------------------------------
# Tests and `make run` need either EXEC_TEST_PG_DSN, a server on 127.0.0.1:5432, or initdb
# (backend/devtools/local_stack.py then starts a throwaway cluster under .local/pg).
postgres-available:
	@if [ -n "$${EXEC_TEST_PG_DSN:-}" ]; then exit 0; fi; \
	have_initdb() { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; \
	if timeout 2 bash -c '</dev/tcp/127.0.0.1/5432' 2>/dev/null; then exit 0; fi; \
	if have_initdb && { [ "$$(id -u)" != 0 ] || id -u postgres >/dev/null 2>&1; }; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "[make] no Postgres on 127.0.0.1:5432 and no initdb; installing Debian's postgresql package"; \
	  $(APT_GET) update && $(APT_GET) install -y postgresql; \
	else \
	  echo "[make] Postgres is needed: nothing answers on 127.0.0.1:5432 and no initdb was found." >&2; \
	  echo "[make] Install it (e.g. sudo apt-get install postgresql) or set EXEC_TEST_PG_DSN=postgresql://USER@HOST:PORT/postgres." >&2; \
	  exit 1; \
	fi

# --- Chromium for the console's browser tests ------------------------------------------------
# Playwright (requirements-dev.txt) drives Debian's chromium; its own browser download cannot
# work here. EXEC_SKIP_BROWSER_TESTS=1 skips both this step and the tests.
browser-available:
	@if [ -x /usr/bin/chromium ] || [ "$${EXEC_SKIP_BROWSER_TESTS:-}" = 1 ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "[make] /usr/bin/chromium missing; installing Debian's chromium for the browser tests"; \
	  $(APT_GET) update && $(APT_GET) install -y chromium; \
	else \
	  echo "[make] the console's browser tests need /usr/bin/chromium: install it (e.g. sudo apt-get install chromium) or set EXEC_SKIP_BROWSER_TESTS=1." >&2; \
	  exit 1; \
	fi

# --- Quality gates ---------------------------------------------------------------------------
lint: install
	@rc=0; \
	echo "[make] ruff check $(LINT_PATHS)"; $(VENV)/bin/ruff check $(LINT_PATHS) || rc=1; \
	echo "[make] ruff format --check $(LINT_PATHS)"; $(VENV)/bin/ruff format --check $(LINT_PATHS) || rc=1; \
	echo "[make] mypy backend/execution backend/audit"; $(VENV)/bin/mypy backend/execution backend/audit || rc=1; \
	exit $$rc

test: install lint
	$(VPY) -m pytest $(PYTEST_ARGS)

run: install
	$(VPY) -m backend.devtools.run_local

drill: install
	$(VPY) -m backend.devtools.kill_switch_drill $(DRILL_ARGS)

bench: install
	$(VPY) -m backend.devtools.bench $(BENCH_ARGS)

bench-console: install
	$(VPY) -m backend.devtools.bench_console $(CONSOLE_BENCH_ARGS)

fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(VPY) -m pytest tests/contract $(FUZZ_ARGS)

fmt: install
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
