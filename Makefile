# The observatory's everyday commands. Each one prepares what it needs (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help setup run test drills lint format bench clean

help:
	@echo "make run    - the whole observatory locally (broker, Redis, services, http://127.0.0.1:8000)"
	@echo "make test   - lint, type-check and the full test suite against real Redis and broker"
	@echo "make drills - the long operational scenarios (several rounds each; not in make test)"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - performance benchmarks (not part of the tests)"

setup:
	@scripts/bootstrap.sh

run: setup
	@$(VENV)/bin/observatoire run

lint: setup
	$(VENV)/bin/ruff check services tests bench scripts
	$(VENV)/bin/ruff format --check services tests bench scripts
	$(VENV)/bin/mypy

test: lint
	@scripts/run_tests.sh

drills: setup
	@scripts/run_tests.sh -m drills

format: setup
	$(VENV)/bin/ruff format services tests bench scripts
	$(VENV)/bin/ruff check --fix services tests bench scripts

bench: setup
	$(PY) -m bench

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache test-artifacts
