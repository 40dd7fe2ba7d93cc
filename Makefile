# Two commands for a newcomer: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint system-deps bytecode clean
VIEWER_MODULES := viewer/node_modules/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(BYTECODE)
	touch $(STAMP)

## bytecode: byte-compile our packages. They are installed editable, and with
## PYTHONDONTWRITEBYTECODE=1 (set in some environments) Python would otherwise recompile them
## at every start (0.1–0.2 s of `wsi dicomize`). Quiet, ~0.1 s when the .pyc are up to date.
BYTECODE = $(PY) -m compileall -q wsi dicomizer archive dicomweb samples
bytecode: $(STAMP)
	@$(BYTECODE)

## viewer/node_modules: the viewer's npm packages (OpenSeadragon, dicom-microscopy-viewer), from package-lock.json
viewer/node_modules: $(VIEWER_MODULES)
$(VIEWER_MODULES): viewer/package.json viewer/package-lock.json
	@command -v npm >/dev/null || { \
		echo "installing npm from Debian"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }
	cd viewer && npm ci --no-audit --no-fund --loglevel=error
	touch $(VIEWER_MODULES)

## run: install everything and start the service (HTTP 127.0.0.1:8080, DICOM 11112, ./data)
run: $(STAMP) $(VIEWER_MODULES) bytecode
	$(VENV)/bin/wsi serve --host 127.0.0.1 --port 8080 --dicom-port 11112 \
		--ae-title WSIARCHIVE --data-dir ./data

## system-deps: Debian packages the tests use (DCMTK, dicom3tools, Chromium), installed when missing
system-deps:
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium from Debian (browser tests drive it with Playwright)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@if ! command -v dciodvfy >/dev/null || ! command -v storescu >/dev/null; then \
		echo "installing dcmtk and dicom3tools from Debian"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dcmtk dicom3tools >/dev/null; \
	fi

## lint: ruff, import layering contracts, mypy
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## test: install what the tests need, lint, run the whole suite
test: $(STAMP) $(VIEWER_MODULES) bytecode system-deps lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache viewer/node_modules
