# Developer entry points. `make test` is what CI runs (.ci/run); `make run` starts a local control plane with the
# operator and the sample triggers. Both install what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv controlplane helm image node shells test unit cluster faults lint contracts typecheck bench run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

controlplane:
	hack/build-controlplane.sh >/dev/null

helm:
	hack/build-helm.sh >/dev/null

# The operator image (podman; tests/image/ runs it as the chart does). Cached: seconds unless its inputs changed.
image: venv
	STARGRAPH_PYTHON=$(PY) hack/build-image.sh >/dev/null

# The test cluster's nodes: containerd and the CNI plugins (apt-get, as root), kubelet, kube-scheduler and kwok.
node:
	hack/build-node.sh >/dev/null

# zsh for the completion tests (bash is always there): apt-get as root; without it the zsh test skips, saying why.
shells:
	@command -v zsh >/dev/null || { [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh >/dev/null; } || echo "zsh not installed"

test: venv contracts shells controlplane helm image node
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: venv shells
	$(PY) -m pytest -q -m "not cluster" $(PYTEST_ARGS)

cluster: venv controlplane helm image node
	$(PY) -m pytest -q -m cluster $(PYTEST_ARGS)

faults: venv controlplane helm
	$(PY) -m pytest -q tests/faults $(PYTEST_ARGS)

lint: venv contracts
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/mypy

# The import layers ([tool.importlinter] in pyproject.toml) and the declared dependencies ([tool.deptry]): about a
# second, so `make test` (what CI runs) checks them first, before building anything.
contracts: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry operator

bench: venv controlplane
	$(PY) -m bench

run: venv controlplane node
	hack/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
