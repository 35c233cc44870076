# gpuetl entry points. Each target does what its name says; targets a later issue fills fail with a
# clear message until then. Settings live in configs/; pass overrides as SET="a.b=c x.y=z".

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
TORCH       ?= torch==2.13.0
START       ?= 2024-01-01
END         ?= 2024-12-31
SET         ?=
SETARGS     := $(foreach s,$(SET),--set $(s))

.PHONY: help setup setup-conda test test-gpu lint dataset dataset-gpu dataset-cpu train baseline bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## CPU dev env: $(VENV) with torch ($(TORCH)) and `pip install -e .[dev]`
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m gpuetl doctor

setup-conda: ## GPU env: the RAPIDS conda env from environment.yml
	conda env create -f environment.yml || conda env update -f environment.yml

test: ## the test suite (GPU tests skip cleanly without CUDA)
	$(PY) -m pytest -m "not slow"

test-gpu: ## only the GPU parity tests (needs CUDA + RAPIDS)
	$(PY) -m pytest -m gpu

lint: ## ruff + mypy
	$(PY) -m ruff check .
	$(PY) -m mypy

dataset dataset-gpu dataset-cpu:
	@echo "make $@: the dataset build arrives with the feature engine (issue #4: gpuetl build); not available yet" >&2; exit 2

train baseline:
	@echo "make $@: GAT training and the XGBoost baseline are not built yet" >&2; exit 2

BACKEND     ?= auto

bench: ## the benchmark suite (BACKEND=gpu|cpu|auto; SMOKE=1 for the small sizes) -> benchmarks/results/
	$(PY) -m benchmarks.run --backend $(BACKEND) $(if $(SMOKE),--smoke)

clean: ## remove caches and build outputs (not data/)
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
