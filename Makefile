# clipline: `make demo` runs a real clip job end to end; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs install clean bench screenshots

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m clipline.local.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Rewrites every generated document; tests fail while any of them is stale.
docs: $(STAMP)
	$(BIN)/python -m clipline.api.openapi docs/openapi.json
	$(BIN)/python -m clipline.metric_catalog docs/metrics.md
	$(BIN)/python -m clipline.settings_reference README.md
	$(BIN)/python -m clipline.workflow.diagram docs/architecture.md

# The console's screenshots in docs/images, taken in Debian's Chromium (apt-get install chromium).
screenshots: $(STAMP)
	$(BIN)/python -m tests.console_screenshots

# Benchmarks print figures and rewrite docs/performance.md; `make test` never runs them.
# BENCH_ARGS passes options to the driver, e.g. BENCH_ARGS=--soak for 1000 jobs.
bench: $(STAMP)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo demo-out .pytest_cache
