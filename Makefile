# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make test` needs beyond Python and make: Linux (the emulator freezes processes and reads
# /proc), Node.js's npm (Azurite, the Azure Storage emulator, is npm-installed into the
# git-ignored .azurite/) and an installed Chromium (the dashboard's browser test; see
# tests/dev/chromium.py for where it is looked for; never Playwright's own download). Where
# apt-get exists the missing packages are installed with it, through sudo only when not root;
# anywhere else the line says what to install.
AZURITE := .azurite/.installed
APT_INSTALL = DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CAN_APT = command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; }

.PHONY: run test lint bench bench-azure clean linux chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

linux:
	@[ "$$(uname -s)" = Linux ] || { echo "make test: the tests need Linux (the emulator \
	freezes with SIGSTOP and reads /proc); on $$(uname -s) run them in a Linux container: \
	docker run --rm -it -v \"$$PWD\":/src -w /src python:3.13 make test" >&2; exit 1; }

chromium: $(STAMP)
	@$(BIN)/python tests/dev/chromium.py >/dev/null 2>&1 || { $(CAN_APT) && \
		$(SUDO) apt-get update -q && $(APT_INSTALL) chromium; } || \
		{ $(BIN)/python tests/dev/chromium.py; exit 1; }

$(AZURITE):
	@command -v npm >/dev/null || { $(CAN_APT) && $(SUDO) apt-get update -q && \
		$(APT_INSTALL) npm; } || { echo "make test: the Azure tests need Node.js's npm \
	(for Azurite): install Node.js (macOS: brew install node), then make test again" >&2; exit 1; }
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
# on two cores. Work stealing keeps a few long tests (wheels, crash and lease tests) from
# leaving one worker busy at the end while the others idle: 3 min instead of 4.
test: linux $(STAMP) lint $(AZURITE) chromium
	$(BIN)/python -m pytest -n 3 --dist worksteal

# Every comparison of issue 17 side by side, one table of ratios with the goals (~5 min).
# Lambda runs Python 3.12-3.14: where Python 3.13 is installed (on PATH or under pyenv), the
# runtime comparison runs on it too, from a venv of its own holding the same FastAPI, Mangum and
# awslambdaric as $(VENV).
LAMBDA_PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" -c pass 2>/dev/null && echo "$$p" && break; done)
LAMBDA_VENV := .venv-lambda
bench: $(STAMP)
	@if [ -n "$(LAMBDA_PYTHON)" ]; then \
		$(MAKE) --no-print-directory $(LAMBDA_VENV)/.installed && \
		$(BIN)/python bench/run.py --lambda-python $(LAMBDA_VENV)/bin/python; \
	else \
		echo "(no Python 3.13 found: the runtime comparison runs on $(VENV)'s Python only)"; \
		$(BIN)/python bench/run.py; \
	fi

$(LAMBDA_VENV)/.installed: $(STAMP)
	$(LAMBDA_PYTHON) -m venv $(LAMBDA_VENV)
	$(BIN)/python -m pip freeze | grep -iE '^(fastapi|starlette|pydantic|pydantic[-_]core|anyio|mangum|awslambdaric)==' > $(LAMBDA_VENV)/constraints.txt
	$(LAMBDA_VENV)/bin/python -m pip install -q -c $(LAMBDA_VENV)/constraints.txt -e . fastapi mangum awslambdaric
	touch $@

# holdfast.azure against func.AsgiFunctionApp: a 300 ms BackgroundTask, side by side.
bench-azure: $(STAMP)
	$(BIN)/python bench/azure.py

clean:
	rm -rf $(VENV) $(LAMBDA_VENV) build *.egg-info src/*.egg-info .azurite .screenshots
