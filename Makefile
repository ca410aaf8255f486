# Two commands set everything up: `make demo` (the main job) and `make test`.
# Both install what they need on a fresh Debian bookworm machine (apt-get, pip).

# dockyard lives in its own virtualenv (as pipx would install it): the system interpreter's
# site-packages may carry .pth start-up hooks (here a certifi hook costs every Python process
# ~25-50 ms), which a CLI typed all day should not pay. `make install` links the command.
BASE_PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
BIN_DIR ?= /usr/local/bin
# Debian packages the tests, the demo and the benchmarks use as peers and oracles.
# debootstrap makes the labs' debian:bookworm; chromium is the e2e tests' browser.
# docker.io is the oracle of the side-by-side tests (a private dockerd each test starts and stops)
# and, with docker-compose 1.29, a client of dockyard's Engine API service. containerd's ctr pulls
# from dockyard's registry; nginx and haproxy balance registry replicas.
APT_PACKAGES = python3-venv busybox-static skopeo docker-registry umoci crun runc podman libseccomp2 curl openssl iptables iproute2 debootstrap chromium docker.io docker-compose containerd nginx haproxy
BENCH_APT_PACKAGES = podman podman-compose crun runc wrk dnsperf buildah debootstrap
PYTEST_ARGS ?=

.PHONY: deps install test unit integration images demo demo-down bench clean

deps:
	@# Services a package brings (docker.io's dockerd, containerd) are not started: policy-rc.d
	@# answers 101 while apt-get runs, so nothing changes the host's bridges or firewall.
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:$$missing"; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; rc=$$?; \
		if [ -n "$$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		exit $$rc; \
	fi
	@test -x $(PYTHON) || $(BASE_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'
	@# setuptools' start-up hook (a .pth that installs an import finder for distutils) costs every
	@# dockyard command ~4 ms; nothing here imports distutils, and pip builds in isolation anyway.
	rm -f $(VENV)/lib/python3*/site-packages/distutils-precedence.pth
	@# pip's launcher imports re (with enum, ~4-5 ms of every command) only to strip Windows suffixes
	@# from argv[0]: ours does without.
	printf '#!%s\nimport sys\nfrom dockyard.cli.main import main\nif __name__ == "__main__":\n    sys.exit(main())\n' '$(PYTHON)' > $(VENV)/bin/dockyard

# `dockyard` on PATH, for the labs' commands.
install: deps
	ln -sf $(VENV)/bin/dockyard $(BIN_DIR)/dockyard

test: deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)

unit: deps
	$(PYTHON) -m pytest -m unit $(PYTEST_ARGS)

integration: deps
	$(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

# The labs' images (debian:bookworm and busybox imported, the rest built with dockyard build).
images: install
	$(PYTHON) examples/images.py

# Both labs: the registry on :5000 and WordPress on http://127.0.0.1/ (HTTP_PORT=8080 make demo).
demo: install
	$(PYTHON) examples/demo.py

demo-down:
	$(PYTHON) examples/demo.py --down

bench: deps
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	$(PYTHON) bench/pull.py
	$(PYTHON) bench/net.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .hypothesis .venv
