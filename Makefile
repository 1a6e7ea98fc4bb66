# One command per job. Every target bootstraps its own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help venv demo test test-unit test-cloud lint check build bench chaos requirements clean local-up local-down

help:
	@echo "make demo   - run the main job on the embedded local AWS (no AWS account needed), then serve the console until Ctrl-C (DEMO_ARGS=--no-console: end at once)"
	@echo "make test   - unit, state-machine and end-to-end tests on the local stack"
	@echo "make lint   - ruff, mypy (domain package), static checks (asl-validator, Express worst case, IAM grants), sam validate --lint"
	@echo "make check  - every guard rail: lint (ruff check + format, mypy strict, static checks, sam validate) and test"
	@echo "make build  - sam build (needs python3.13 on PATH)"
	@echo "make bench  - benchmarks that print figures"
	@echo "make chaos  - the fault suite: 1,000 sends and a 1,000-recipient campaign under seeded faults (CHAOS_ARGS=--seed 7)"
	@echo "make test-cloud - against a deployed stack: SESFLOW_CLOUD_STACK=name AWS_REGION=eu-west-1 make test-cloud"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[dev]'  # (setuptools' editable-install notice)
	@touch $@

venv: $(STAMP)

DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/python -m sesflow.demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-cloud: $(STAMP)
	@test -n "$$SESFLOW_CLOUD_STACK" || { echo "make test-cloud: set SESFLOW_CLOUD_STACK=<deployed stack> (region: AWS_REGION or SESFLOW_CLOUD_REGION)" >&2; exit 2; }
	$(BIN)/python -m pytest -m cloud tests/cloud

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m sesflow.requirements --check
	$(BIN)/python -m sesflow.staticcheck
	$(BIN)/sam validate --lint --template template.yaml

check: lint test

# sam build needs the Lambda runtime's interpreter (python3.13) on PATH; on machines with
# pyenv: PYENV_VERSION=3.11.7:3.13.0 make build
build: $(STAMP)
	$(BIN)/sam build --template template.yaml

bench: $(STAMP)
	$(BIN)/python -m bench

CHAOS_ARGS ?=
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

requirements: $(STAMP)
	$(BIN)/python -m sesflow.requirements --write

local-up: $(STAMP)
	$(BIN)/sesflow local up

local-down: $(STAMP)
	$(BIN)/sesflow local down

clean:
	rm -rf $(VENV) .aws-sam .sesflow .pytest_cache .mypy_cache .ruff_cache node_modules
