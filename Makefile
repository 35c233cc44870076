# gpuetl entry points. Each target does what its name says; targets a later issue fills fail with a
# clear message until then. Settings live in configs/; pass overrides as SET="a.b=c x.y=z".

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
TORCH       ?= torch==2.13.0
START       ?= 2024-01-01
END         ?= 2024-12-31
SET         ?=
DATASET_CONFIG ?= configs/dataset/default.yaml
BACKEND     ?= auto
SIZE        ?= small
BACKENDS    ?= gpu,cpu,polars,polars-gpu,pandas-naive
SETARGS     := $(foreach s,$(SET),--set $(s))
TRAIN_SET   ?=
TRAINARGS   := $(foreach s,$(TRAIN_SET),--config-set $(s))
RUN         ?=
PREDICT_RUN ?= data/runs/gat
DATE        ?=
DAGSTER_PORT ?= 3000


.PHONY: help setup setup-conda test test-gpu lint demo dataset dataset-gpu dataset-cpu update train baseline tune predict dagster rehearsal bench clean

HELP_VARS   := PYTHON VENV TORCH START END SET BACKEND DEMO_LAKE PREDICT_RUN DAGSTER_PORT

help: ## this list of targets (with the variables above as they are now)
	@grep -E '^[a-z][a-z -]*:.*## ' $(MAKEFILE_LIST) \
	  | sed $(foreach v,$(HELP_VARS),-e 's|$$($(v))|$($(v))|g') \
	  | awk -F':.*## ' '{n = split($$1, t, " "); for (i = 1; i <= n; i++) printf "  %-12s %s\n", t[i], $$2}'

setup: ## CPU dev env: $(VENV) with torch ($(TORCH)) and `pip install -e .[dev,train,bench,orchestrate,s3]`
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,train,bench,orchestrate,s3]"
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

DEMO_LAKE   := data/demo/raw
HAS_KEY     := $(shell [ -n "$$JQUANTS_API_KEY" ] || grep -qs '^JQUANTS_API_KEY=' .env && echo yes)

demo: ## the main job on the built-in demo market: fetch from the fake J-Quants server into $(DEMO_LAKE), build the dataset and its graphs (BACKEND=$(BACKEND))
	$(PY) -m gpuetl fetch --demo $(SETARGS)
	$(PY) -m gpuetl build --lake $(DEMO_LAKE) --out data/datasets/demo --overwrite --backend $(BACKEND) $(SETARGS)
	$(PY) -m gpuetl graph --dataset data/datasets/demo --lake $(DEMO_LAKE) --overwrite --backend $(BACKEND) $(SETARGS)

dataset: ## fetch what is missing from START=$(START) (and the warm-up before it) to END=$(END) (the demo market when no key is set), build, graphs on BACKEND=$(BACKEND)
ifeq ($(HAS_KEY),yes)
	$(PY) -m gpuetl fetch --start $(START) --end $(END) --warmup-for $(DATASET_CONFIG) $(SETARGS)
	$(PY) -m gpuetl build --config $(DATASET_CONFIG) --config-set start=$(START) --config-set end=$(END) --overwrite --backend $(BACKEND) $(SETARGS)
	$(PY) -m gpuetl graph --overwrite --backend $(BACKEND) $(SETARGS)
else
	@echo "make dataset: no JQUANTS_API_KEY (environment or .env): using the built-in demo market" >&2
	$(MAKE) demo BACKEND=$(BACKEND) SET="$(SET)"
endif

dataset-gpu: ## `make dataset` on the GPU (fails, naming what is missing, where there is none)
	$(MAKE) dataset BACKEND=gpu

dataset-cpu: ## `make dataset` on the CPU (pandas/NumPy)
	$(MAKE) dataset BACKEND=cpu

update: ## the evening job: fetch what is new, extend the dataset and its graphs by the new days only (the demo dataset after `make demo`; BACKEND=$(BACKEND))
	$(PY) -m gpuetl update --backend $(BACKEND) $(SETARGS)

train: ## walk-forward GAT training on the demo dataset (configs/train/gat.yaml; TRAIN_SET="k=v ..."; RUN=--overwrite or RUN=--resume for an existing run) -> data/runs/gat
	$(PY) -m gpuetl train --config configs/train/gat.yaml --backend $(BACKEND) $(SETARGS) $(TRAINARGS) $(RUN)

baseline: ## the XGBoost baseline on the same folds (configs/train/xgb.yaml; TRAIN_SET="k=v ..."; RUN= as for train) -> data/runs/xgb
	$(PY) -m gpuetl baseline --config configs/train/xgb.yaml --backend $(BACKEND) $(SETARGS) $(TRAINARGS) $(RUN)

TUNE        ?= configs/tune/gat.yaml
TRIALS      ?=

tune: ## Optuna over the search space of TUNE (configs/tune/gat.yaml; configs/tune/xgb.yaml: the baseline) on validation days before the test years, on the demo dataset (TRAIN_SET="k=v ..."; TRIALS=n in all); a rerun continues the study -> data/tune/<name>
	$(PY) -m gpuetl tune --config $(TUNE) --backend $(BACKEND) $(SETARGS) $(TRAINARGS) $(if $(TRIALS),--trials $(TRIALS))

predict: ## rank the latest day (DATE=YYYY-MM-DD for another) of the run's dataset with the model of PREDICT_RUN=$(PREDICT_RUN) (`make train`; data/runs/xgb: `make baseline`) -> data/predictions/<run>/<day>
	$(PY) -m gpuetl predict --run $(PREDICT_RUN) --backend $(BACKEND) $(SETARGS) $(if $(DATE),--date $(DATE)) --overwrite

dagster: ## the daily job (fetch, build, graph, predict) in Dagster's UI on port $(DAGSTER_PORT): `dagster dev -m gpuetl.orchestrate`, its state in data/dagster
	mkdir -p data/dagster
	DAGSTER_HOME=$(abspath data/dagster) $(VENV)/bin/dagster dev -m gpuetl.orchestrate -p $(DAGSTER_PORT)

rehearsal: ## a scheduler and 3 workers sharing nothing but an S3 server (moto's, or ENDPOINT=) build the demo dataset and graphs, one worker killed mid-build; checked equal to one process -> benchmarks/results/
	$(PY) -m benchmarks.rehearsal $(if $(ENDPOINT),--endpoint $(ENDPOINT)) $(SETARGS) --out benchmarks/results/cpu-$$(date +%F)-rehearsal.md

bench: ## stage by stage vs Polars and pandas (SIZE=small|medium|full, BACKENDS=gpu,cpu,...) -> benchmarks/results/bench-SIZE/
	$(PY) -m gpuetl bench --size $(SIZE) --backends $(BACKENDS) --out benchmarks/results/bench-$(SIZE) --overwrite

clean: ## remove caches and build outputs (not data/)
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
