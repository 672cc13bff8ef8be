# The two entry points of the README, and the pieces they are made of.
#   make up     creates .venv, logs in to a local file backend, selects/creates the `local` stack, pulumi up
#   make test   creates .venv with the dev tools, builds the pinned CLI tools, runs the test suite
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
STACK ?= local
# Local state: a file backend inside the project. Secrets are encrypted with PULUMI_CONFIG_PASSPHRASE when you
# set it; otherwise with a random passphrase generated once into .state/passphrase (git-ignored), so that
# nothing prompts and no passphrase is a default anyone knows.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.state
export PULUMI_CONFIG_PASSPHRASE_FILE ?= $(CURDIR)/.state/passphrase
PYTEST_ARGS ?=

.PHONY: up destroy preview doctor extras env outputs render venv dev tools test lane-unit-engine-service lane-e2e \
	lane-node lint \
	engine-test node-test

$(VENV)/.installed: pyproject.toml requirements.txt model-service/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[dev]' -e './model-service[serve,dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.dev-installed

.state/passphrase:
	mkdir -p .state
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@

# Each prerequisite on one line, found or missing, with the command that installs what is missing (scripts/doctor.py).
doctor:
	$(PYTHON) scripts/doctor.py --stack $(STACK) --for up

# The cloud's Python extra of the stack (`.[aws]` for eks, ...), installed into .venv once.
extras: venv
	extra="$$($(PYTHON) scripts/doctor.py --stack $(STACK) --print-extra)"
	if [ -n "$$extra" ] && [ ! -f "$(VENV)/.extra-$$extra" ]; then
		$(VENV)/bin/pip install --quiet -e ".[$$extra]" && touch "$(VENV)/.extra-$$extra"
	fi

up: doctor extras .state/passphrase
	pulumi stack select --create $(STACK) --non-interactive
	bash scripts/stack-file-clean.sh $(STACK)
	pulumi up --yes --non-interactive --stack $(STACK)

# The backend and passphrase make uses, as exports for a shell of your own: eval "$$(make -s env)"
env:
	@echo "export PULUMI_BACKEND_URL=$(PULUMI_BACKEND_URL)"
	@echo "export PULUMI_CONFIG_PASSPHRASE_FILE=$(PULUMI_CONFIG_PASSPHRASE_FILE)"

# Grafana's URL, user and password, and the port-forwards to Prometheus, Alertmanager and the models, from the
# stack's outputs (its kubeconfig written to .state/<stack>.kubeconfig, readable by you alone).
outputs:
	umask 077 && pulumi stack output kubeconfig --show-secrets --stack $(STACK) > .state/$(STACK).kubeconfig
	pulumi stack output --json --show-secrets --stack $(STACK) | $(PYTHON) scripts/outputs.py --kubeconfig .state/$(STACK).kubeconfig

# A stack's monitors as files, for a deployment without Pulumi: per model its PrometheusRule and ServiceMonitor,
# and the dashboards' JSON (components/render.py).
OUT ?= rendered
render: venv
	$(VENV)/bin/python -m components.render --stack $(STACK) --out $(OUT)

preview: extras .state/passphrase
	$(PYTHON) scripts/doctor.py --stack $(STACK) --for preview
	pulumi stack select --create $(STACK) --non-interactive
	pulumi preview --diff --non-interactive --stack $(STACK)

destroy: extras .state/passphrase
	$(PYTHON) scripts/doctor.py --stack $(STACK) --for destroy
	pulumi destroy --yes --non-interactive --stack $(STACK)

tools:
	bash scripts/install-system-packages.sh
	bash scripts/install-tools.sh
	bash scripts/install-engine.sh
	bash scripts/install-node.sh

lint: dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy components

# Every suite, in three lanes side by side, each printed whole when it ends; the run fails if any does. Two lanes
# mostly wait on servers they started (the end-to-end modules, three at a time; the real node), the third keeps a
# core busy (the unit tests under mocks, the real engine, the sample service's suite with its image build steps).
test: dev tools lint
	$(MAKE) --no-print-directory -j3 --output-sync=target lane-unit-engine-service lane-e2e lane-node

lane-unit-engine-service:
	$(VENV)/bin/python -m pytest -m 'not e2e' $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest -m engine tests/engine $(PYTEST_ARGS)
	cd model-service && ../$(VENV)/bin/python -m pytest -m 'image or not image' $(PYTEST_ARGS)

lane-e2e:
	$(VENV)/bin/python -m pytest -m e2e --numprocesses 3 --dist loadfile $(PYTEST_ARGS)

lane-node:
	$(VENV)/bin/python -m pytest -m node tests/node $(PYTEST_ARGS)

# The monitors end to end on this machine, for a person: the sample service, Prometheus and Alertmanager as local
# processes, normal then drifted traffic, and a drift alert printed as it goes pending, firing and resolved.
.PHONY: demo
demo: dev
	bash scripts/install-tools.sh prometheus alertmanager
	$(VENV)/bin/python -m tests.e2e.demo $(DEMO_ARGS)

# The real Pulumi engine alone (tests/engine): builds its tools on first use (about 17 minutes on 2 cores), then
# previews the local and existing stacks and deploys, redeploys and destroys the existing one on a local API server.
engine-test: dev
	bash scripts/install-engine.sh
	$(VENV)/bin/python -m pytest -m engine tests/engine $(PYTEST_ARGS)

# The product on a real Kubernetes node on this machine (tests/node), as root: builds the node's binaries and images
# on first use, starts etcd, the API server, the scheduler, containerd, the kubelet and kube-proxy in namespaces of
# their own, runs `pulumi up` of the existing stack onto it, the scenarios, `pulumi destroy`, and checks the machine
# is left as it was.
node-test: dev
	bash scripts/install-system-packages.sh
	bash scripts/install-tools.sh prometheus alertmanager
	bash scripts/install-engine.sh
	bash scripts/install-node.sh
	$(VENV)/bin/python -m pytest -m node tests/node $(PYTEST_ARGS)
