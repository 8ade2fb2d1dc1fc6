# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOAR := $(VENV)/bin/soar

.PHONY: install demo test test-slow bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## The main job on the built-in default (arithmetic world, shipped tiny model and hard sets).
demo: install
	$(SOAR) premise --config configs/demo.yaml

## The test suite (fast tiers; about a few minutes on 2 cores).
test: install
	$(PY) -m pytest -q

## Long tests (marked slow), run outside CI.
test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/bench_speed.py

lint: install
	$(VENV)/bin/ruff check soar tests benchmarks
	$(VENV)/bin/ruff format --check soar tests benchmarks

clean:
	rm -rf $(VENV) runs *.egg-info
