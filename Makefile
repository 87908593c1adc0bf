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

.PHONY: venv test lint template checkov unit e2e browser-deps build deploy run invoke bench clean

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

## make test: lint and type checks, template checks (checkov included), unit tests, end-to-end and browser tests.
test: lint template browser-deps
	$(BIN)/python -m pytest

## make lint: ruff, then mypy over the layer, the functions, local/, cli/ and tests/ ([tool.mypy]),
## then bandit over the code that runs (pyproject.toml [tool.bandit]), local/ (what `make run` runs) included.
## Each finding is fixed or skipped on its line with `# nosec BXXX  # reason` (in local/: the emulator's demo
## credentials, API Gateway's error texts, OAuth's token type, the template loader's yaml.SafeLoader subclass).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive layers functions cli
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive local

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
	rm -rf .aws-sam .local test-artifacts $(CHECKOV_VENV)
