# Two commands on a fresh clone:  make demo   |   make test
# Each builds what it needs: .venv (control plane + `modelops`) and .venv-serve (the scoring
# runtime, azureml-inference-server-http, kept apart because its pins conflict with the control plane).
# With npm on PATH it also installs node_modules (Azurite, for the blob storage integration tests; Kusto.Language,
# which checks the project's KQL). `make test` also builds .venv-tools: checkov (tests/test_infra.py), whose pins
# clash with .venv.

PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
TOOLS_VENV := .venv-tools
# the suite's files run on this many workers (pytest-xdist); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2
PIP_FLAGS := --quiet --disable-pip-version-check
ENV_DIR := ml/environments
NPM := $(shell command -v npm 2>/dev/null)
PACKAGE := dist/modelops-functionapp.zip
# One command line for the lock, so the test can tell a lock made another way (tests/test_package.py).
LOCK_COMMAND := pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --output-file=requirements.lock requirements.txt

.PHONY: demo test test-infra tools-env bench bench-infra bench-scoring bench-handoff bench-drift bench-export bench-endpoints bench-rollout bench-package lock package env serving-env check-python clean help

help:
	@echo "make demo         run the main job on the embedded local platform"
	@echo "make test         run the whole test suite"
	@echo "make bench        run the benchmarks under bench/"
	@echo "make test-infra   check infra/ (Bicep syntax, contract tests, checkov) without the Bicep compiler"
	@echo "make env          build .venv and .venv-serve only (and node_modules when npm exists)"
	@echo "make tools-env    build .venv-tools (checkov; make test builds it too)"
	@echo "make lock         re-lock requirements.txt into requirements.lock (pip-compile, with hashes)"
	@echo "make package      build the Function App's deployment zip ($(PACKAGE)) from the lock"
	@echo "make clean        remove virtual environments and local platform state"

demo: env
	$(VENV)/bin/modelops demo

test: env $(TOOLS_VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-infra: $(VENV)/.installed $(TOOLS_VENV)/.installed
	$(VENV)/bin/python -m pytest tests/test_infra.py $(PYTEST_ARGS)

bench: bench-scoring bench-handoff bench-drift bench-export bench-endpoints bench-rollout bench-infra bench-package

bench-infra: $(VENV)/.installed $(TOOLS_VENV)/.installed
	$(VENV)/bin/python bench/infra_checks.py

bench-package: env
	$(VENV)/bin/python bench/package.py

bench-drift: env
	$(VENV)/bin/python bench/drift.py

bench-export: env
	$(VENV)/bin/python bench/export.py

bench-endpoints: env
	$(VENV)/bin/python bench/endpoints.py

bench-handoff: env
	$(VENV)/bin/python bench/handoff.py

bench-rollout: env
	$(VENV)/bin/python bench/rollout_load.py

bench-scoring: env
	$(VENV)/bin/python bench/scoring_overhead.py

# The Function App's packages, locked with hashes (run after changing requirements.txt; commit both).
lock: env
	$(VENV)/bin/$(LOCK_COMMAND)

# The zip `func azure functionapp publish` / `azd deploy` upload: the app minus .funcignore, and the
# lock installed into .python_packages/lib/site-packages (installed packages cached per lock in build/).
package: env requirements.lock
	$(VENV)/bin/python tools/package.py --out $(PACKAGE) --cache build/package-cache

env: $(VENV)/.installed $(SERVE_VENV)/.installed $(if $(NPM),node_modules/.installed)

serving-env: $(SERVE_VENV)/.installed

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "modelops needs Python 3.11+, found " + sys.version.split()[0] + " (set PYTHON=...)")'

$(VENV)/.installed: requirements.txt requirements-cli.txt requirements-dev.txt $(ENV_DIR)/runtime-pins.txt $(ENV_DIR)/mlflow-pins.txt pyproject.toml | check-python
	@echo "==> building $(VENV) (control plane)"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(SERVE_VENV)/.installed: $(ENV_DIR)/serving-requirements.txt $(ENV_DIR)/runtime-pins.txt $(ENV_DIR)/mlflow-pins.txt | check-python
	@echo "==> building $(SERVE_VENV) (scoring runtime: azureml-inference-server-http)"
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(SERVE_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $(ENV_DIR)/serving-requirements.txt
	touch $@

tools-env: $(TOOLS_VENV)/.installed

$(TOOLS_VENV)/.installed: requirements-tools.txt | check-python
	@echo "==> building $(TOOLS_VENV) (checkov, for tests/test_infra.py)"
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-tools.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@echo "==> installing node_modules (Azurite, Kusto.Language)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) $(SERVE_VENV) $(TOOLS_VENV) .modelops .pytest_cache node_modules dist build/package-cache
