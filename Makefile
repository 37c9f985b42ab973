# The two set-up commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := /usr/sbin:$(PATH)

.PHONY: deps demo test lint unit bench bench-scale clean

$(VENV)/.installed: pyproject.toml deploy/dev/bootstrap.sh
	VENV=$(VENV) bash deploy/dev/bootstrap.sh

deps: $(VENV)/.installed

demo: deps
	$(VENV)/bin/foyer demo

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check core meters bins alerts billing device_sim tests
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

unit: deps
	$(PY) -m pytest tests/unit

# The whole report: tests.bench, then the scale report (ingestion workers, soak,
# catch-up), which with --all also runs the care and billing scale cases.
bench: deps
	$(PY) -m tests.bench
	$(PY) -m tests.bench_scale --all

# Ingestion at scale only (BENCH_* sizes: tests/bench_scale.py); writes bench-scale.json.
bench-scale: deps
	$(PY) -m tests.bench_scale

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
