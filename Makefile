# accesswatch: `make demo` and `make test` each set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_HOME ?= var/demo

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup lint format test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy schemas pipeline detectors evaluation flows cli

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two workers, one test file each at a time: module fixtures and in-file order hold, and
# each worker builds its own session fixtures (Prefect server, sample demo home).
TEST_WORKERS ?= 2

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# The demo key is labelled as such and only ever used on the synthetic sample.
demo: setup
	ACCESSWATCH_PSEUDONYM_KEY=DEMO-KEY-not-secret-for-synthetic-sample-data-only \
	$(BIN)/accesswatch demo --home $(DEMO_HOME) --landing data/sample/landing

bench: setup
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/detect.py
	$(BIN)/python benchmarks/backfill.py
	$(BIN)/python benchmarks/analyst.py
	$(BIN)/python benchmarks/demo.py

clean:
	rm -rf var bench-out test-artifacts .pytest_cache .mypy_cache .ruff_cache
