# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's browser test drives Debian's chromium (never Playwright's own download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Azure tests run Azurite, the Azure Storage emulator, from npm into this git-ignored folder.
AZURITE := .azurite/.installed

.PHONY: run test lint bench bench-azure clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium

$(AZURITE):
	command -v npm >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends npm; }
	mkdir -p .azurite
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite
	touch $(AZURITE)

run: $(STAMP)
	$(BIN)/holdfast dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Most tests wait on real processes (emulator, runtimes, moto_server), not the CPU: three workers
# on two cores keep the suite near two minutes.
test: $(STAMP) lint $(AZURITE) | $(CHROMIUM)
	$(BIN)/python -m pytest -n 3

# Every comparison of issue 17 side by side, one table of ratios with the goals (~5 min).
bench: $(STAMP)
	$(BIN)/python bench/run.py

# holdfast.azure against func.AsgiFunctionApp: a 300 ms BackgroundTask, side by side.
bench-azure: $(STAMP)
	$(BIN)/python bench/azure.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .azurite
