# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Everything they need is installed here: Debian packages (as root), a .venv with the project,
# and the pinned Apache Kafka jars from Maven Central.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help deps deps-test venv kafka-jars up down status demo test test-unit test-integration lint schemas bench clean

help:
	@echo "make demo   - install everything, start local Kafka/PostgreSQL/Prometheus, run the main job"
	@echo "make test   - install everything and run unit + integration tests on real services"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmarks under bench/ (see bench/RESULTS.md)"
	@echo "make up / status / down - manage the local services"

deps:
	@bash infra/install-system-deps.sh

# The tests also need Debian's chromium (the operator console's browser test); the demo does not.
deps-test:
	@bash infra/install-system-deps.sh --test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

kafka-jars: venv
	$(BIN)/kpsandbox fetch-kafka

up: deps kafka-jars
	$(BIN)/kpsandbox up

status: venv
	$(BIN)/kpsandbox status

down: venv
	$(BIN)/kpsandbox down

demo: up
	$(BIN)/kpsandbox demo --keep-up

test: deps-test kafka-jars
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: deps-test kafka-jars
	$(BIN)/pytest -q tests/integration

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schemas: venv
	$(BIN)/kpsandbox schemas export docs/schemas

bench: up
	$(BIN)/python bench/kafka_baseline.py
	$(BIN)/python bench/services_up.py

clean: down
	rm -rf $(VENV) .kpsandbox .kpsandbox-test
