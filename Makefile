# Two entry points: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-today test-any-day lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/samlad demo $(ARGS)

# The whole suite twice: with today's clock, and with the wall clock a year ahead
# (tests/any_day/sitecustomize.py), so that no test depends on the date it runs.
test: lint test-today test-any-day

test-today: $(STAMP)
	bash scripts/ensure-postgres
	$(BIN)/pytest

test-any-day: $(STAMP)
	bash scripts/ensure-postgres
	PYTHONPATH=tests/any_day $(BIN)/pytest -W ignore::pytest.PytestAssertRewriteWarning

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .samlad

# The big fuzz run: tests/gateway/test_fuzz.py with SAMLAD_FUZZ_SCALE=6 (about 7,000
# requests as five principals, schemathesis's coverage phase included), stopped after
# 30 minutes; it prints its tally: cases, statuses, server errors and leaks.
.PHONY: fuzz
fuzz: $(STAMP)
	SAMLAD_FUZZ_SCALE=6 timeout 1800 $(BIN)/pytest -q -p no:cacheprovider tests/gateway/test_fuzz.py
