# airdock — the two commands a user needs are `make bundle` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests drive as real peers (rpm/dnf/createrepo_c, registry, dockerd, skopeo)
TEST_DEBS := rpm createrepo-c dnf python3-dnf docker.io docker-registry skopeo busybox-static \
             gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross util-linux openssh-server
TEST_TOOLS := rpmbuild rpmsign createrepo_c dnf dockerd docker containerd docker-registry skopeo \
              busybox gcc aarch64-linux-gnu-gcc unshare nsenter sshd
BUNDLE_ARGS ?=
# The oldest Python the builder claims (pyproject: >= 3.9); its tests run there too.
OLDEST_PYTHON ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.9*/bin/python3.9) \
                  $(shell command -v python3.9 2>/dev/null))
OLDEST_VENV := .venv-oldest
# Builder tests (the installer's own tests already run it under 2.7, 3.6 and the current Python).
# The fleet scenarios drive Ansible, not the builder: they run once, in .venv (ansible-core 2.16
# needs Python >= 3.10) and with .venv-ansible29.
OLDEST_TESTS := --ignore-glob='tests/test_installer*' --ignore=tests/test_rig_mirror.py \
                --ignore=tests/test_fleet.py

.PHONY: all bundle test test-oldest check lint typecheck venv deps clean demo bench demo-fleet ansible29

all: test

$(BIN)/airdock: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/airdock

bundle: venv
	$(BIN)/airdock build --output bundles/ $(BUNDLE_ARGS)

# Installs the Debian tools the tests need when one is missing (apt-get), so a fresh machine works.
deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test tools (missing:$$missing)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(TEST_DEBS); \
	fi

test: deps venv
	@$(MAKE) --no-print-directory ansible29 || echo "Ansible 2.9 did not install: the fleet tests use ansible-core 2.16 only"
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-oldest

$(OLDEST_VENV)/bin/airdock: pyproject.toml
	@if [ -z "$(OLDEST_PYTHON)" ]; then echo "no Python 3.9 found (pyenv install 3.9)"; exit 1; fi
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/pip install -q -e '.[test]'
	@touch $@

# The builder on the oldest Python it supports (no createrepo_c wheel there: the command is used).
test-oldest: deps $(OLDEST_VENV)/bin/airdock
	$(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS) $(PYTEST_ARGS)

# Speed is measured here, never asserted in tests (bench/README.md). BENCH_QUICK=1: one run,
# one link (a few minutes); BENCH_ARGS passes options (--runs, --rates, --only).
BENCH_DEBS := pigz dnf-plugins-core
bench: deps venv
	@if ! command -v pigz >/dev/null 2>&1 || ! dpkg -s dnf-plugins-core >/dev/null 2>&1; then \
	  echo "installing bench tools ($(BENCH_DEBS))"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BENCH_DEBS); \
	fi
	$(BIN)/python -m bench.build_bench $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)
	$(BIN)/python bench/fleet_bench.py

# The gates CI runs: lint (ruff; the installer with rules that stay valid on Python 2.7),
# typecheck (mypy on builder/), then the whole test suite.
check: lint typecheck test

lint: venv
	$(BIN)/ruff check builder tests bench
	$(BIN)/ruff format --check builder tests bench
	@# B904 would ask for `raise ... from`, which Python 2.7 cannot parse
	$(BIN)/ruff check --isolated --target-version py37 --line-length 100 --select E,F,W,B \
	  --ignore B904 installer

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .venv-ansible29 .pytest_cache .cache

# The whole story offline on this machine: fixture mirror + registry -> airdock build ->
# CentOS 7 sandbox host: check, install, status, hello-world, uninstall, --purge (needs root).
demo: deps venv
	$(BIN)/python -m tests.rig.demo

# The fleet playbook (BUNDLE/ansible/airdock.yml) over real SSH onto three sandbox hosts,
# offline, printed step by step (root). AIRDOCK_DEMO_ANSIBLE=2.9 after `make ansible29`.
demo-fleet: deps venv
	$(BIN)/python -m tests.rig.demo_fleet

# EPEL 7's Ansible 2.9 from PyPI, on the oldest Python here (3.9; 2.9 predates 3.10): the
# fleet tests run their scenarios with it too when this venv exists (ansible-core 2.16,
# which needs Python >= 3.10, is in .venv through pyproject's test extras).
ANSIBLE29_PYTHON ?= $(OLDEST_PYTHON)
ansible29: .venv-ansible29/bin/ansible-playbook

.venv-ansible29/bin/ansible-playbook:
	$(ANSIBLE29_PYTHON) -m venv .venv-ansible29
	.venv-ansible29/bin/pip install -q 'ansible==2.9.*'
