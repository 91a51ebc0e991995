# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create (or reuse) .venv and install the project into it; nothing else is needed.

PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when setup.py changes (the stamp is older than it).
$(VENV)/.installed: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m pipelines.demo

# pytest exits 5 when it collects nothing: that is a failure here, not a pass.
# Two pytest-xdist workers, a test file each (module fixtures such as a shared training run are
# built once): 710 and 845 s on 2 cores vs 1316 s in one process (2026-12-06; --dist worksteal:
# 779 s, within the noise).
test: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . || exit 1; \
	$(BIN)/python -m pytest -n 2 --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

# Benchmarks append their numbers to bench/RESULTS.md (minutes each; run on a quiet machine).
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.bench_crawl --latency_ms=0
	$(BIN)/python -m bench.bench_crawl --latency_ms=20
	$(BIN)/python -m bench.bench_build
	$(BIN)/python -m bench.bench_train
	$(BIN)/python -m bench.bench_first_step
	nice -n 5 $(BIN)/python -m bench.bench_flops
	$(BIN)/python -m bench.bench_storage

clean:
	rm -rf $(VENV) workspace .pytest_cache *.egg-info
