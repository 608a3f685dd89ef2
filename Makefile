# artifact-operator developer targets. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export KUBEBUILDER_ASSETS ?= $(abspath ../shared/k8s/bin)

.PHONY: help install test unit integration lint crd crd-check settings-doc run render bench e2e clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/activate ## create .venv and install the operator with its dev tools
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

test: ## run every test: unit, contract and integration (starts a local control plane)
	$(BIN)/python -m pytest -q -rs

unit: ## run only the tests that need no cluster
	$(BIN)/python -m pytest -q -m 'not cluster'

integration: ## run only the tests against the control plane
	$(BIN)/python -m pytest -q -rs -m cluster

lint: ## ruff, mypy and the import contracts between the layers
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

crd: ## regenerate crds/ (and the copies under deploy/) from the models
	$(BIN)/artifact-operator crd -o crds
	cp crds/workload.dev_artifacts.yaml crds/workload.dev_artifactapprovals.yaml deploy/crd/bases/
	cp crds/workload.dev_artifacts.yaml crds/workload.dev_artifactapprovals.yaml \
	  deploy/helm/artifact-operator/crds/

settings-doc: ## print the configuration reference table of README.md from Settings
	@$(BIN)/python -m artifact_operator.app.settings_doc

run: ## run the operator against the cluster in KUBECONFIG, all namespaces
	$(BIN)/artifact-operator run --all-namespaces

render: ## render the samples offline
	$(BIN)/artifact-operator render -f deploy/samples/

bench: ## the benchmark of bench/ (starts its own control plane)
	$(BIN)/python -m bench

e2e: ## end-to-end on kind (needs Docker); not part of `make test`
	@echo "e2e needs kind and Docker, which this machine does not have" && exit 1

clean: ## remove caches and the virtualenv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache src/*.egg-info
