# Quick start: `make demo` then `make test`. Python packages install into .venv/ and .venv-emulators/;
# `make test` also installs the Debian packages its tests need (root or sudo), see test-prerequisites.
PYTHON ?= python3
VENV := .venv
EMU := .venv-emulators
BIN := $(VENV)/bin

.PHONY: setup infra-tools test-prerequisites demo test lint typecheck check package clean

setup: $(VENV)/.installed $(EMU)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The BigQuery and GCS emulators live in their own venv: bqemulator pins protobuf/duckdb
# versions that must not leak into the functions' environment.
$(EMU)/.installed: requirements/emulators.txt
	$(PYTHON) -m venv $(EMU)
	$(EMU)/bin/pip install -q --upgrade pip
	$(EMU)/bin/pip install -q -r requirements/emulators.txt
	touch $@

# Offline Terraform checks: python-hcl2, checkov (own venv), the google provider schema (npm).
# Only the tests need them, so `make demo` does not wait for them.
infra-tools: setup
	bash infra/checks/setup.sh

demo: setup
	$(BIN)/spotify-pipeline demo
	env -u SPOTIFY_PIPELINE_PROJECT $(BIN)/spotify-pipeline dashboard --out build/dashboard  # the demo is local

# Chromium, chromedriver and Java installed when missing (root or sudo), or one line naming what to
# install; first, so a fresh machine learns it in seconds (see the script).
test-prerequisites:
	PYTHON=$(PYTHON) bash scripts/test-prerequisites.sh

# Two pytest processes at once, each with its own local stack: the fault and bad-input suites
# (tests/reliability, tests/fuzz: they write docs/reliability.md's cases) and every other tier.
# Both mostly wait on emulators and timers, so two share a 2-core machine well.
test: test-prerequisites setup infra-tools
	@mkdir -p build
	@echo "tests/reliability and tests/fuzz run alongside the other tiers; their output follows at the end"
	@$(BIN)/python -m pytest -q tests/reliability tests/fuzz > build/test-reliability.log 2>&1 & faults=$$!; \
	$(BIN)/python -m pytest -q tests --ignore=tests/reliability --ignore=tests/fuzz; others=$$?; \
	wait $$faults; reliability=$$?; \
	echo "--- tests/reliability tests/fuzz (build/test-reliability.log) ---"; cat build/test-reliability.log; \
	test $$others -eq 0 -a $$reliability -eq 0

lint: setup
	$(BIN)/ruff check src functions tests infra/checks benchmarks

typecheck: setup
	$(BIN)/mypy
	for f in functions/*/main.py; do $(BIN)/mypy --strict $$f || exit 1; done

check: lint typecheck test

package: setup
	$(BIN)/spotify-pipeline package

clean:
	-[ -x $(BIN)/spotify-pipeline ] && $(BIN)/spotify-pipeline stack down --wipe
	rm -rf build .stack test-artifacts
