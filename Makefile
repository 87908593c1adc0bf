# One entry point for people and CI. Every target bootstraps .venv from bare python3 first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
REGION ?= us-east-1
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
# `make invoke` prints only the function's JSON, even when called from another make.
MAKEFLAGS += --no-print-directory

.PHONY: venv test lint template unit e2e browser-deps build deploy run invoke bench clean

$(STAMP): requirements-dev.txt constraints.txt layers/common/requirements.txt
	@echo "Creating $(VENV) with pinned dependencies..." >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt >&2
	@touch $@

venv: $(STAMP)

## make test: lint and type checks, template checks, unit tests, end-to-end and browser tests.
test: lint template browser-deps
	$(BIN)/python -m pytest

## make lint: ruff, then mypy over the layer, the functions, local/ and tests/ (pyproject.toml [tool.mypy]),
## then bandit over the code that runs (pyproject.toml [tool.bandit]). local/ runs only on a developer's machine:
## there bandit also skips what ruff's per-file-ignores for local/ accept (the emulator's demo credentials, the
## local gateway's error texts: B105-B107) and the template loader, a yaml.SafeLoader subclass (B506).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive layers functions
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive local --skip B101,B105,B106,B107,B506

template: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --region $(REGION)
	$(BIN)/sam build --build-dir .aws-sam/build --region $(REGION)

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not browser"

e2e: $(STAMP) browser-deps
	$(BIN)/python -m pytest -m "e2e or browser"

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
	@PYTHONPATH=layers/common $(BIN)/python -m tests.bench

clean:
	rm -rf .aws-sam .local test-artifacts
