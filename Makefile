# Two entry points: `make demo` and `make test`. Both set up .venv on first use, from the
# lock file only (requirements/dev.txt: every package pinned, with its hashes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Lock files (docs/operations.md#installing): `make lock` writes them from pyproject.toml.
LOCK_DEV := requirements/dev.txt
LOCK_RUNTIME := requirements/runtime.txt
LOCK_BUILD := requirements/build.txt
# The tool that writes them, in a venv of its own (never needed to install).
UV_VERSION := 0.13.9
LOCK_VENV := .venv-lock
COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)

.PHONY: demo test test-today test-any-day lint check-wheel lock lock-upgrade bench clean

# A new lock rebuilds the venv from nothing, so it holds exactly the lock's packages (a
# changed pyproject.toml alone reinstalls the project). The project goes in without
# dependencies and without a build venv (setuptools is in the lock); `pip check` then
# fails if the lock misses a dependency that pyproject.toml names: run `make lock`.
$(STAMP): pyproject.toml $(LOCK_DEV)
	$(if $(filter $(LOCK_DEV),$?),rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK_DEV)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/pip check || { echo "$(LOCK_DEV) does not satisfy pyproject.toml: run make lock" >&2; exit 1; }
	touch $(STAMP)

# The JavaScript the tests use (tests/js/package.json): axe-core and fhir-kit-client, from
# the npm lock file only.
JS_TOOLS := tests/js
JS_STAMP := $(JS_TOOLS)/node_modules/.installed

$(JS_STAMP): $(JS_TOOLS)/package.json $(JS_TOOLS)/package-lock.json
	cd $(JS_TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

demo: $(STAMP)
	$(BIN)/samlad demo $(ARGS)

# The whole suite twice: with today's clock, and with the wall clock a year ahead
# (tests/any_day/sitecustomize.py), so that no test depends on the date it runs.
# Then the built wheel, installed alone from the runtime lock, must start the demo.
test: lint test-today test-any-day check-wheel

# Each pass runs in one worker process per core (pytest-xdist), a test file to a worker,
# so that a file's module fixtures start once: `make test TEST_WORKERS=1` runs it in one.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test-today: $(STAMP) $(JS_STAMP)
	bash scripts/ensure-postgres
	bash scripts/ensure-chromium
	$(PYTEST)

test-any-day: $(STAMP) $(JS_STAMP)
	bash scripts/ensure-postgres
	bash scripts/ensure-chromium
	PYTHONPATH=tests/any_day $(PYTEST) -W ignore::pytest.PytestAssertRewriteWarning

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Build the wheel, install it with only requirements/runtime.txt into a fresh venv, start
# `samlad demo` from it in a temporary folder and ask it for /fhir/metadata.
check-wheel: $(STAMP)
	$(PYTHON) scripts/check_wheel.py --builder $(BIN)/python

# Rewrite the lock files from pyproject.toml, keeping every pin that still fits (a new
# dependency adds only itself and what it needs). `make lock-upgrade` takes the newest
# release of everything. The runtime and build locks are held to the dev lock's versions,
# so the tests run exactly what ships.
lock: $(LOCK_VENV)/.uv-$(UV_VERSION)
	$(call compile,pyproject.toml requirements/build.in --extra dev,$(LOCK_DEV))
	$(call compile,pyproject.toml -c $(LOCK_DEV),$(LOCK_RUNTIME))
	$(call compile,requirements/build.in -c $(LOCK_DEV),$(LOCK_BUILD))

# Compile $(1) into the lock file $(2), starting from its pins; replace the file only if
# it changed, so that an unchanged lock does not rebuild the venv.
define compile
	cp $(2) $(2).new
	$(COMPILE) $(1) -o $(2).new
	if cmp -s $(2).new $(2); then rm $(2).new; else mv $(2).new $(2); fi
endef

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

$(LOCK_VENV)/.uv-$(UV_VERSION):
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet 'uv==$(UV_VERSION)'
	touch $@

clean:
	rm -rf $(VENV) $(LOCK_VENV) .samlad $(JS_TOOLS)/node_modules

# The big fuzz run: tests/gateway/test_fuzz.py with SAMLAD_FUZZ_SCALE=6 (about 7,000
# requests as five principals, schemathesis's coverage phase included), stopped after
# 30 minutes; it prints its tally: cases, statuses, server errors and leaks.
.PHONY: fuzz
fuzz: $(STAMP)
	SAMLAD_FUZZ_SCALE=6 timeout 1800 $(BIN)/pytest -q -p no:cacheprovider tests/gateway/test_fuzz.py
