# ecrf: `make run` starts the app with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Exact versions of every dependency: every install below uses it as pip constraints, so a
# new machine gets what the suite last passed with. `make lock` refreshes it.
LOCK := requirements/lock.txt
# The lowest versions pyproject.toml allows for ecrf's own dependencies (what those need in
# turn at its newest), resolved for Python 3.11: `make test-lowest` runs the suite and ruff
# on them in a separate virtual environment, which proves every lower bound.
LOWEST := requirements/lowest.txt
VENV_LOWEST ?= .venv-lowest
PYTHON_LOWEST ?= python3.11
# `make lock LOCK_UPGRADE=` keeps the current pins wherever pyproject.toml still allows them.
LOCK_UPGRADE ?= --upgrade
UV_COMPILE := pyproject.toml --extra test --python-version 3.11
# The lock covers the bench extra too (`make bench`); the lowest versions cover the suite's.
UV_LOCK := $(UV_COMPILE) --extra bench

.PHONY: run test test-lowest install install-test install-bench system-deps lint lock bench clean-db help \
	messages-extract messages-update messages-compile messages-stats messages

# Debian packages the test suite drives: Chromium (browser tests), poppler-utils (PDF
# checks), the libraries and fonts WeasyPrint renders with, and a CJK font (Noto Sans CJK)
# for Chinese in PDFs and in the browser.
DEB_PACKAGES := chromium poppler-utils fonts-dejavu-core fonts-noto-cjk libpango-1.0-0 \
	libpangoft2-1.0-0

help:
	@echo "make run    create .venv, install, migrate, load demo data, serve on http://$(HOST):$(PORT)"
	@echo "make test   install test extras and run the whole suite"
	@echo "make test-lowest  run the suite and ruff on the lowest versions pyproject.toml allows"
	@echo "make lint   ruff check and the architecture contracts (lint-imports)"
	@echo "make lock   refresh $(LOCK) and $(LOWEST) from PyPI after changing pyproject.toml"
	@echo "make bench  run the benches and the load test on PostgreSQL, then print one table"
	@echo "make messages  re-extract the strings and update the catalogs (then translate them)"
	@echo "make messages-stats  the share of strings translated per language"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ecrf needs Python 3.11 or newer; set PYTHON=python3.11")'
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtual environment. On Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test]'
	@touch $@

# The benches serve the app with gunicorn (a test extra) and drive the load test with locust.
$(VENV)/.installed-bench: $(VENV)/.installed-test pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test,bench]'
	@touch $@

# Translations: translations/messages.pot is extracted from ecrf/ and templates/ (babel.cfg);
# translations/<lang>/LC_MESSAGES/messages.po are the catalogs, compiled to .mo files (build
# products, not committed) by every install, so `make run` and `make test` serve them.
# After adding or changing user-facing strings: `make messages`, translate, commit the .po.
TRANSLATIONS := translations
PYBABEL_EXTRACT := extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
	--project=ecrf --msgid-bugs-address= --copyright-holder= -o $(TRANSLATIONS)/messages.pot .

# The creation date is left out of the template and the catalogs: re-extracting on two
# branches then merges cleanly.
NO_DATE := sed -i '/^"POT-Creation-Date: /d'

messages-extract: $(VENV)/.installed
	$(BIN)/pybabel -q $(PYBABEL_EXTRACT)
	$(NO_DATE) $(TRANSLATIONS)/messages.pot

messages-update: messages-extract
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
	  --no-wrap --ignore-obsolete
	$(NO_DATE) $(TRANSLATIONS)/*/LC_MESSAGES/messages.po
	@$(MAKE) --no-print-directory messages-stats

messages: messages-update

messages-compile: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d $(TRANSLATIONS)

messages-stats: $(VENV)/.installed
	@$(BIN)/python scripts/translation_stats.py

install: $(VENV)/.installed
	@$(MAKE) --no-print-directory messages-compile

install-test: $(VENV)/.installed-test
	@$(MAKE) --no-print-directory messages-compile

install-bench: $(VENV)/.installed-bench
	@$(MAKE) --no-print-directory messages-compile

run: install
	$(BIN)/ecrf db upgrade
	$(BIN)/ecrf demo
	@echo ""
	@echo "ecrf is starting on http://$(HOST):$(PORT)  (Ctrl+C to stop)"
	$(BIN)/ecrf run --host $(HOST) --port $(PORT)

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "Install:$$missing"; exit 1; fi; \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install-test system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Made from scratch whenever the lowest versions change, so nothing newer lingers in it.
$(VENV_LOWEST)/.installed-test: pyproject.toml $(LOWEST)
	@$(PYTHON_LOWEST) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null \
	  || { echo "make test-lowest needs Python 3.11, the oldest ecrf supports: set PYTHON_LOWEST=/path/to/python3.11"; exit 1; }
	rm -rf $(VENV_LOWEST)
	$(PYTHON_LOWEST) -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_LOWEST)/bin/python -m pip install --quiet -c $(LOWEST) -e '.[test]'
	@touch $@

test-lowest: $(VENV_LOWEST)/.installed-test system-deps
	$(VENV_LOWEST)/bin/pybabel -q compile -d $(TRANSLATIONS)
	$(VENV_LOWEST)/bin/python -m pytest $(PYTEST_ARGS)
	$(VENV_LOWEST)/bin/ruff check .

# ruff, then the architecture contracts in .importlinter (layers, no cycles, public surfaces).
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Resolves against PyPI with uv (installed into .venv); pip alone is enough to install.
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile $(UV_LOCK) --universal $(LOCK_UPGRADE) --no-header --quiet -o $(LOCK)
	@{ printf '%s\n' \
	  "# The exact version of every package ecrf and its test and bench extras install, for" \
	  "# every Python ecrf supports (3.11 and newer) on any platform. make run, make test," \
	  "# make bench and CI install with it as pip constraints:" \
	  "#    pip install -c $(LOCK) -e '.[test]'" \
	  "# Do not edit by hand: refresh it with \`make lock\` (needs PyPI), which runs" \
	  "#    uv pip compile $(UV_LOCK) --universal --upgrade -o $(LOCK)"; \
	  cat $(LOCK); } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	$(BIN)/uv pip compile $(UV_COMPILE) --resolution lowest-direct $(LOCK_UPGRADE) --no-header --quiet -o $(LOWEST)
	@{ printf '%s\n' \
	  "# The lowest versions pyproject.toml allows for ecrf's dependencies and test extras (what" \
	  "# those need in turn at its newest), for Python 3.11. \`make test-lowest\` installs them" \
	  "# into $(VENV_LOWEST) and runs the whole suite and ruff, which proves the lower bounds." \
	  "# Do not edit by hand: refresh it with \`make lock\` (needs PyPI), which runs" \
	  "#    uv pip compile $(UV_COMPILE) --resolution lowest-direct --upgrade -o $(LOWEST)"; \
	  cat $(LOWEST); } > $(LOWEST).tmp && mv $(LOWEST).tmp $(LOWEST)

# Every bench on PostgreSQL (ECRF_BENCH_DATABASE_URL, default the local server), then one
# table of their figures; `make bench BENCH_ARGS=--quick` checks they all run, at small sizes.
bench: install-bench
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean-db:
	# the embedded database with its audit key and anchor log: they belong to it alone
	rm -f instance/ecrf.db instance/audit.key instance/audit-anchors.log
