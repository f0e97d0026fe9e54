# FreightML: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
SIZE ?= demo
SEED ?= 42
# immutable by default: <version>-<git sha>, the tag `make release` pushes
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
IMAGE ?= ghcr.io/freightml/freightml:$(VERSION)-$(GIT_SHA)
PYTEST_ARGS ?=
# pytest-xdist workers (one PostgreSQL database each; 0 runs in this process)
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadfile

.PHONY: image helm-docs help install demo monitor-demo demo-loop test test-fast test-unit test-integration lint format compile models dashboards bench bench-training bench-serving bench-collector bench-drift bench-real-data bench-quality bench-retrain-window bench-scale bench-learning-curve manifests lint-k8s release clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@echo "uv not found: installing it with pip"
	$(PYTHON) -m pip install --user --quiet uv

install: $(UV) ## Install the locked environment (.venv) with uv, the cluster tools extra included
	$(UV) sync --frozen --extra tools --extra spark --python $(PYTHON)

demo: install ## Generate demo data, run the training pipeline locally, register a champion
	$(RUN) freightml demo --size $(SIZE) --seed $(SEED)

monitor-demo: install ## After make demo: requests, later facts with a regional shift, batch scoring, freightml monitor run
	$(RUN) freightml demo --size $(SIZE) --seed $(SEED) --monitor

demo-loop: install ## The closed loop on one machine: serve, collect, monitor, decide, retrain, promote (size small)
	$(RUN) freightml demo --loop

test: install ## Run every test (unit, data, quality, integration, e2e, the cluster checks) on 2 pytest-xdist workers (WORKERS=N); prints what skipped and why
	$(RUN) pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install ## The edit loop: every test that needs no pipeline run, server process or trained model (-m "not slow")
	$(RUN) pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: install ## Lint and format-check with ruff, type-check src/ with mypy, check the import floors (CI runs it)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports --no-cache

format: install ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test-unit: install ## Run the fast unit tests only
	$(RUN) pytest $(XDIST) -m "unit or data" $(PYTEST_ARGS)

test-integration: install ## Run integration and e2e tests
	$(RUN) pytest $(XDIST) -m "integration or e2e" $(PYTEST_ARGS)

compile: install ## Compile the pipelines to KFP IR YAML in build/pipelines
	$(RUN) freightml pipeline compile

models: install ## List registered model versions and aliases
	$(RUN) freightml models list

dashboards: install ## Regenerate helm/freightml-monitoring/files/dashboard.json (grafana-foundation-sdk)
	$(RUN) python -m freightml.cluster.dashboard

bench: bench-training bench-serving bench-collector bench-drift ## Run all benchmarks (results in bench/RESULTS.md)

bench-training: install ## Benchmark the training pipeline on small, demo and large
	$(RUN) python bench/training_bench.py --sizes small demo large

bench-serving: install ## Benchmark the predictor (vs MLServer, bare kserve.Model, in-process; default serve with events on vs off)
	$(RUN) python bench/serving_bench.py --repeat 2 --duration 5

bench-collector: install ## Benchmark the collector (CloudEvents/s on SQLite, none lost)
	$(RUN) python bench/collector_bench.py

bench-drift: install ## Benchmark drift (1 M rows x 20 features) vs Evidently's DataDriftPreset (own venv)
	$(RUN) python bench/drift_bench.py --rows 1000000 --features 20

bench-false-drift: install ## Drift results on unshifted continuations (synthetic seeds, real panel): calibrated input thresholds vs configured only
	$(RUN) python bench/real_data.py
	$(RUN) python bench/false_drift.py

bench-spool: install ## A 5-minute collector outage under load: the predictor's payload log with and without its disk spool (events lost)
	$(RUN) python bench/spool_outage.py --outage 300

bench-retrain-window: install ## Shift-aware training window vs full-window retrain on synthetic shifts (post-change backtest WAPE)
	$(RUN) python bench/retrain_window.py --size $(SIZE) --seed $(SEED)

bench-real-data: install ## Build the real development panel (US flights, npm vega-datasets) and measure validation on it
	$(RUN) python bench/real_data.py --validate

bench-scale: install ## compute.engine pandas vs Spark local[2]: feature build, batch scoring, predictor window on 6,850 and 70,000 series (time, facts/s, peak memory; ~30 min)
	$(RUN) python bench/scale_bench.py --series 6850
	$(RUN) python bench/scale_bench.py --series 70000 --start 2024-01-01

bench-learning-curve: install ## The GBM's fit time, memory and backtest WAPE per region at 0.5/1/5/20 M training rows (70,000 series; ~30 min)
	$(RUN) python bench/learning_curve.py

bench-quality: install ## Forecast quality side by side: FreightML defaults vs statsforecast and mlforecast+LightGBM, real panel and demo
	$(RUN) python bench/real_data.py
	$(RUN) python bench/real_quality.py --source .freightml/data/real-flights.parquet --source demo

manifests: install ## Regenerate manifests/base from the code, render every chart (ci/ values) and overlay into build/manifests
	$(RUN) python -m freightml.cluster render

lint-k8s: install ## Render, then check every object: helm lint, schemas/CRDs, FreightML policy, Argo CD project, checkov
	$(RUN) python -m freightml.cluster check

helm-docs: install ## Rewrite the values tables of helm/*/README.md from values.yaml's `# --` comments
	$(RUN) python tools/helm_docs.py

image: ## Build the FreightML image (components/Dockerfile) as $(IMAGE) with docker, podman or buildah
	@set -e; \
	args="--build-arg GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  echo "building $(IMAGE) with docker"; DOCKER_BUILDKIT=1 docker build -f components/Dockerfile -t $(IMAGE) $$args .; \
	elif command -v podman >/dev/null 2>&1; then \
	  echo "building $(IMAGE) with podman"; podman build -f components/Dockerfile -t $(IMAGE) $$args .; \
	elif command -v buildah >/dev/null 2>&1; then \
	  echo "building $(IMAGE) with buildah"; buildah build -f components/Dockerfile -t $(IMAGE) $$args .; \
	else \
	  if command -v docker >/dev/null 2>&1; then \
	    echo "make image: docker is installed but its daemon is not reachable (docker info failed), and neither podman nor buildah is installed." >&2; \
	  else \
	    echo "make image: no container build tool found: none of docker, podman or buildah is installed." >&2; \
	  fi; \
	  echo "Install one (e.g. 'sudo apt-get install podman' or Docker Engine: https://docs.docker.com/engine/install/), or start the Docker daemon, then run make image again." >&2; \
	  exit 1; \
	fi

release: install ## Build and push the image as <version>-<git sha>, pin its digest into the overlays, the chart and the pipelines' base image (DIGEST=sha256:... pins an image built elsewhere)
	$(RUN) python -m freightml.cluster release $(if $(DIGEST),--digest $(DIGEST))

clean: ## Remove local state and build outputs (.freightml, build)
	rm -rf .freightml build
