# artifact-operator developer targets. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export KUBEBUILDER_ASSETS ?= $(abspath ../shared/k8s/bin)
# The real node's scripts (node.sh, netns.sh, oci_image.py) beside the binaries.
NODE_DIR ?= $(abspath $(KUBEBUILDER_ASSETS)/../node)
# Where `make e2e-images` writes the test-time images (rebuilt every run; bases are cached).
E2E_IMAGES ?= $(abspath .e2e-images)
# Where a running `make demo` keeps its pid, kubeconfig, operator log and volumes.
DEMO_STATE ?= $(abspath .demo)
# On the local node the e2e tests run inside netns.sh's private network namespace; against a
# cluster in KUBECONFIG, as they are.
E2E_WRAP := $(if $(filter 1,$(ARTIFACT_TEST_USE_KUBECONFIG)),,$(NODE_DIR)/netns.sh)

.PHONY: help install test unit integration e2e e2e-setup e2e-images demo demo-shell demo-stop lint crd crd-check settings-doc run render bench soak clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/activate ## create .venv and install the operator with its dev tools
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

test: ## run every test: unit, contract, integration (a local control plane), then e2e (a real node)
	$(BIN)/python -m pytest -q -rs
	$(MAKE) e2e

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

soak: ## the churn test at full size: 1000 artifacts, 32 clients at 10 ops/s in all, 10 minutes (CI runs a short one)
	ARTIFACT_CHURN_SECONDS=600 ARTIFACT_CHURN_ARTIFACTS=1000 ARTIFACT_CHURN_CLIENTS=32 \
	  ARTIFACT_CHURN_OPS_PER_SECOND=10 \
	  $(BIN)/python -m pytest -q -s tests/integration/test_churn.py

e2e: e2e-setup e2e-images ## the operator installed as users install it, on a real node (root)
	$(E2E_WRAP) env ARTIFACT_E2E_IMAGES=$(E2E_IMAGES) $(BIN)/python -m pytest -q -rs -m e2e tests/e2e

# debootstrap builds the images; docker-registry and skopeo serve the real build's registry
# (tests/e2e/test_real_build.py, which starts its own inside the private namespace).
e2e-setup: ## install what the e2e tier needs when missing (Debian packages; root)
	$(if $(E2E_WRAP),sh $(NODE_DIR)/setup.sh)
	command -v debootstrap >/dev/null && command -v docker-registry >/dev/null && \
	  command -v skopeo >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap docker-registry skopeo \
	  >/dev/null; }

e2e-images: ## build the e2e tier's images (operator from the working tree, workload) into E2E_IMAGES
	$(BIN)/python -m tests.support.images build --out $(E2E_IMAGES)

demo: e2e-setup ## a local cluster with a real node, the operator and deploy/samples/ Ready (root; Ctrl-C stops it)
	$(BIN)/python -m tests.support.images build --out $(E2E_IMAGES) sample nim
	$(NODE_DIR)/netns.sh $(BIN)/python -m tests.support.demo --images $(E2E_IMAGES) --state $(DEMO_STATE)

demo-shell: ## a shell inside the running demo's network namespace, with its KUBECONFIG
	@test -f $(DEMO_STATE)/pid || { echo "no demo is running: make demo"; exit 1; }
	nsenter --net=/proc/$$(cat $(DEMO_STATE)/pid)/ns/net env KUBECONFIG=$(DEMO_STATE)/kubeconfig \
	  PATH=$(abspath $(BIN)):$$PATH PS1='(demo) \w\$$ ' bash --norc -i

demo-stop: ## stop the running demo (what Ctrl-C in its terminal does)
	@test -f $(DEMO_STATE)/pid || { echo "no demo is running"; exit 0; }
	kill -TERM $$(cat $(DEMO_STATE)/pid)

clean: ## remove caches and the virtualenv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache src/*.egg-info .e2e-images .demo
