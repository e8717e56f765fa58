# Every target installs what it needs into .venv by itself, from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEV := $(VENV)/.installed-dev
SIM := $(VENV)/.installed-sim

.PHONY: install test lint demo bench soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEV): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(SIM): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[sim]'
	touch $@

install: $(DEV)

test: $(DEV)
	@.ci/ensure-redis-server
	$(PY) -m pytest -q

lint: $(DEV)
	$(PY) -m ruff check failover providers tests examples benchmarks
	$(PY) -m mypy

demo: $(SIM)
	$(PY) -m failover demo

bench: $(DEV)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/deadline.py
	$(PY) benchmarks/work_count.py

# A chaos soak (SOAK_REQUESTS=20000 per run by default): every bad column must print 0.
soak: $(DEV)
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
