# One entry point for people and CI. Every target bootstraps .venv from bare python3 first; `make checkov` (so
# `make template` and `make test`) bootstraps .venv-checkov the same way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# checkov pins its own boto3, botocore, networkx, packaging...: it gets a venv of its own, bootstrapped the same way.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# Offline and the same on every run: no look-up of a newer checkov, no download of Prisma Cloud's check metadata.
CHECKOV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(abspath $(CHECKOV_VENV))/bin/checkov --quiet --compact --skip-download
REGION ?= us-east-1
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
# `make invoke` prints only the function's JSON, even when called from another make.
MAKEFLAGS += --no-print-directory

.PHONY: venv test test-deps test-fast pytest pytest-parallel lint lint-fast template checkov unit component e2e browser-deps build
.PHONY: deploy run invoke bench clean soak

# Then the bundle itself, editable and without dependencies (requirements-dev.txt pinned them): that puts the
# operator's CLI at .venv/bin/x3link (pyproject.toml [project.scripts]).
$(STAMP): requirements-dev.txt constraints.txt layers/common/requirements.txt pyproject.toml
	@echo "Creating $(VENV) with pinned dependencies..." >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --editable . >&2
	@touch $@

$(CHECKOV_STAMP): requirements-checkov.txt constraints-checkov.txt
	@echo "Creating $(CHECKOV_VENV) with pinned dependencies..." >&2
	@$(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt -c constraints-checkov.txt >&2
	@touch $@

venv: $(STAMP)

# pytest-xdist: one worker more than cores, as a fair part of the suite waits (seconds standing for hours, a
# stack starting, Sage's latency) and the extra worker keeps every core busy meanwhile (on 2 cores: 363 s with
# 2 workers, 296 s with 3). A test file stays on one worker, so a module's stack starts once.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print((os.cpu_count() or 1) + 1)")
XDIST := -n $(PYTEST_WORKERS) --dist loadfile
# The `serial` tests, after the rest and with nothing else running: two at a time, test by test (each races
# its own threads on one core; `make soak` runs them in pairs too), never more, whatever the machine.
SERIAL := -n 2 --dist load -m serial

## make test: lint and type checks, template checks (checkov included), and every test (unit, component,
## end-to-end, browser). Lint, the template checks and the tests run side by side, the tests on every core;
## the `serial` tests (timing-sensitive: pyproject.toml's markers) run last, two at a time, nothing else beside.
## (No --output-sync: it would hold back pytest's progress until the whole run ends.)
test:
	@$(MAKE) -j 3 test-deps
	@$(MAKE) -j 3 pytest

# What `make test` installs first, side by side: .venv, .venv-checkov and (where missing) Chromium.
test-deps: $(STAMP) $(CHECKOV_STAMP) browser-deps

## make test-fast: ruff, mypy and tests/unit (pure: no AWS, no sockets, no subprocess), in well under a minute.
test-fast: lint-fast
	$(BIN)/python -m pytest tests/unit

pytest: lint template pytest-parallel
	$(BIN)/python -m pytest $(SERIAL)

pytest-parallel: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not serial"

## make lint: ruff, then mypy over the layer, the functions, local/, cli/ and tests/ ([tool.mypy]),
## then bandit over the code that runs (pyproject.toml [tool.bandit]), local/ (what `make run` runs) included.
## Each finding is fixed or skipped on its line with `# nosec BXXX  # reason` (in local/: the emulator's demo
## credentials, API Gateway's error texts, OAuth's token type, the template loader's yaml.SafeLoader subclass).
lint: lint-fast
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive layers functions cli
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive local

## make lint-fast: ruff and mypy only (`make test-fast` runs them).
lint-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## make template: checkov, then cfn-lint, `sam validate --lint` and `sam build` of template.yaml.
template: $(STAMP) checkov
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --region $(REGION)
	$(BIN)/sam build --build-dir .aws-sam/build --region $(REGION)

## make checkov: checkov (in .venv-checkov) over template.yaml, SAM resources and Globals included, then its
## secrets scan over the repo. Each template finding is fixed or skipped on its resource with a one-line
## `# checkov:skip=CKV_AWS_N:reason`. The secrets scan skips what checkov skips by itself (hidden folders: .git,
## .venv, .venv-checkov, .aws-sam, .local) and test-artifacts (what the tests write).
checkov: $(CHECKOV_STAMP)
	$(CHECKOV) --framework cloudformation --file template.yaml
	$(CHECKOV) --framework secrets --directory . --skip-path test-artifacts

## make unit / component / e2e: one folder of tests/ (parallel, then its `serial` tests).
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

component: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not serial" tests/component
	$(BIN)/python -m pytest $(SERIAL) tests/component || [ $$? -eq 5 ]  # 5: no serial test there

## make soak: the concurrency and fault tests again and again (RUNS, 20 by default), stopping at the first
## failure: a race that passes 49 runs in 50 is a failing test. Run it alone after touching the keeper, the
## store, the rescue or the exports' ledger.
RUNS ?= 20
soak: $(STAMP)
	@for run in $$(seq 1 $(RUNS)); do \
		echo "soak: run $$run of $(RUNS)" >&2; \
		$(BIN)/python -m pytest -q -n 2 -k "concurrent or fault" tests/unit tests/component || exit 1; \
	done

e2e: $(STAMP) browser-deps
	$(BIN)/python -m pytest $(XDIST) -m "not serial" tests/e2e
	$(BIN)/python -m pytest $(SERIAL) tests/e2e || [ $$? -eq 5 ]  # 5: no serial test there

browser-deps:
	@bash local/ensure-chromium.sh

## make build / make deploy: a real AWS account.
build: $(STAMP)
	$(BIN)/sam build --region $(REGION)

deploy: build
	$(BIN)/sam deploy --guided

## make run: the whole stack on this machine, until Ctrl-C.
run: $(STAMP)
	@$(BIN)/python -m local.run

## make invoke FUNCTION=<LogicalId> EVENT=<file>: one function against the stack `make run` started.
invoke: $(STAMP)
	@$(BIN)/python -m local.invoke "$(FUNCTION)" "$(EVENT)"

## make bench: request counts and cold-import times, against baselines measured in the same run.
bench: $(STAMP)
	@PYTHONPATH=layers/common $(BIN)/python -m bench

clean:
	rm -rf .aws-sam .local test-artifacts $(CHECKOV_VENV)
