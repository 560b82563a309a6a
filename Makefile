# `make run` and `make test` work on a fresh machine: each sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test unit lint crds dashboards system-deps tools node-tools cluster-up cluster-down kind-up kind-down clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install qorch with its test tools
	@# Bytecode, as a pip install writes it: an editable install where PYTHONDONTWRITEBYTECODE
	@# is set compiles qorch again in every process (0.1 s of each command's start).
	$(PY) -m compileall -q src

run: setup ## run the quickstart on the embedded control plane
	$(VENV)/bin/qorch run examples/quickstart/

test: setup tools node-tools system-deps ## the whole test suite (builds the test control plane once)
	$(PY) -m pytest

unit: setup ## tests that need neither agents nor a cluster
	$(PY) -m pytest tests/unit

lint: setup ## ruff, mypy and the import-layer contracts
	$(VENV)/bin/ruff check src tests hack benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crds: setup ## regenerate crds/ and the chart's copies from the API models
	$(VENV)/bin/qorch crds --out crds
	cp crds/*.yaml charts/qorch/crds/

dashboards: setup ## regenerate charts/qorch/dashboards/ from hack/dashboards.py
	$(PY) hack/gen_dashboards.py

system-deps: ## Debian packages the tests use as real peers (promtool, swtpm, tpm2-tools)
	bash hack/install-system-deps.sh

tools: ## build the test control plane (kube-apiserver, etcd, kubectl, helm, kwok) and Kueue into the cache
	bash hack/build-tools.sh

node-tools: ## the real node's kubelet, kube-proxy, CoreDNS and Prometheus, into the same cache
	REAL_NODE=1 bash hack/build-tools.sh

cluster-up: setup tools $(if $(REAL_NODE),node-tools system-deps) ## start a local control plane (REAL_NODE=1: real nodes, the image built and loaded); kubeconfig in .cluster/kubeconfig
	$(PY) hack/controlplane.py up $(if $(REAL_NODE),--real-nodes)

cluster-down: ## stop it (real nodes too: processes, mounts, network namespaces, cgroups)
	$(PY) hack/controlplane.py down

kind-up: ## kind cluster with two edge sites, the image, the chart and the quickstart (WITH_MONITORING=1 adds Prometheus + Grafana)
	bash hack/kind-up.sh

kind-down: ## delete the kind cluster
	kind delete cluster --name qorch

clean:
	rm -rf $(VENV) .cluster
