# Qianmian: the one entry point for humans, CI and the docs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
UV_VERSION := 0.13.9
# A uv already on PATH is used; otherwise a pinned one is installed into .tools/ with pip.
UV ?= $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
# uv must use this machine's Python 3.11 and never download an interpreter.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
export UV_PYTHON := 3.11
# One BLAS thread per process: the services and trainers parallelise themselves.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

RUN := $(UV) run --frozen --no-sync
DEMO_DATA := var/demo/bank
SRC_DIRS := libs/core/src libs/rules/src libs/bankgen/src libs/features/src $(wildcard services/*/src)

.PHONY: help install demo test lint format bench eval eval-ranker experiment-report experiment-report-ranker serve clean images

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

install: $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv) ## install everything from uv.lock
	$(UV) sync --frozen

demo: install ## generate a 10k-customer bank, build features, start the services, show real answers
	$(RUN) python scripts/demo.py --customers 10000 --data $(DEMO_DATA)

test: install ## run the whole test suite
	$(RUN) pytest

lint: install ## ruff, mypy --strict on src, import-linter
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy $(SRC_DIRS)
	$(RUN) lint-imports

format: install ## apply ruff's formatting and safe fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: install ## benchmarks; results go to bench/results/
	$(RUN) python bench/bankgen_bench.py
	$(RUN) python bench/train_bench.py --threads 2
	$(RUN) python bench/ranker_bench.py --threads 2
	$(RUN) python bench/decisions_bench.py
	$(RUN) python bench/outbound_bench.py

eval: install ## offline evaluation reports (reports/evaluation.md, reports/ranker.md)
	$(RUN) recommender eval --customers 100000 --seed 7 --out reports
	$(RUN) recommender eval-ranker --customers 100000 --months 12 --seed 7 --out reports

eval-ranker: install ## next-product evaluation of the LightGBM ranker alone (reports/ranker.md)
	$(RUN) recommender eval-ranker --customers 100000 --months 12 --seed 7 --out reports

experiment-report: install ## simulated A/B experiment, CF vs segment popularity, 50k customers x 14 days (reports/)
	$(RUN) python bench/experiment_sim.py --customers 50000 --days 14 --seed 7 --out reports

experiment-report-ranker: install ## simulated A/B experiment, the learned ranker vs CF scores, 50k customers x 14 days (reports/)
	$(RUN) python bench/experiment_sim.py --compare ranker --customers 50000 --days 14 --seed 7 --out reports

serve: install ## profile, product-hub, content-hub, rights-hub on embedded defaults until Ctrl-C
	$(RUN) python scripts/demo.py --serve --customers 10000 --data $(DEMO_DATA)

# Container images (deploy/docker/Dockerfile): image name = service directory, SERVICE = uv package.
# Needs docker with BuildKit; pin the bases by digest with PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
IMAGE_PREFIX ?= qianmian
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
PYTHON_IMAGE ?= python:3.11.14-slim-bookworm
UV_IMAGE ?= ghcr.io/astral-sh/uv:$(UV_VERSION)
IMAGES := product-hub=product-hub profile=profile-service content-hub=content-hub rights-hub=rights-hub recommender=recommender

images: ## build the five service images with docker (qianmian/<service>:<version>)
	@for pair in $(IMAGES); do \
	  name=$${pair%%=*}; package=$${pair#*=}; \
	  echo "building $(IMAGE_PREFIX)/$$name:$(IMAGE_TAG) (package $$package)"; \
	  DOCKER_BUILDKIT=1 docker build --file deploy/docker/Dockerfile \
	    --build-arg SERVICE=$$package --build-arg VERSION=$(IMAGE_TAG) \
	    --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	    --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	    --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) --build-arg UV_IMAGE=$(UV_IMAGE) \
	    --tag $(IMAGE_PREFIX)/$$name:$(IMAGE_TAG) . || exit 1; \
	done

clean: ## remove generated data and local databases
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
