# Every target installs what it needs into .venv by itself, from a fresh clone.
# Installs take the exact versions in requirements/dev.txt (the lock), so a new release of
# a tool or a dependency never changes what a target does until the lock is refreshed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/dev.txt
DEV := $(VENV)/.installed-dev
DEMO := $(VENV)/.installed-demo
BENCH := $(VENV)/.installed-bench
# The lowest supported versions: requirements/lowest.txt on the lowest supported Python;
# the store's exit and first-load tests also run a worker on the highest supported Python.
LOW_VENV := .venv-lowest
LOW_PY := $(LOW_VENV)/bin/python
HIGH_VENV := .venv-highest
HIGH_PY := $(HIGH_VENV)/bin/python
LOWEST_TESTS := tests/test_client_policy.py tests/test_promises.py tests/test_profiles.py \
	tests/test_chain.py tests/test_catalog.py tests/test_config.py tests/test_integration.py \
	tests/test_translation_simulator.py tests/test_caller_input.py tests/test_embeddings.py \
	tests/test_reply_parsing.py tests/test_store.py tests/test_store_ready.py \
	tests/test_store_shutdown.py tests/test_lock.py

.PHONY: install test test-lowest lint docs demo bench soak lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEV): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $@

$(DEMO): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install -q -c $(LOCK) -e '.[demo]'
	touch $@

$(BENCH): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,bench]'
	touch $@

install: $(DEV)

# In parallel (pytest-xdist): a worker per core, idle workers steal the tail's tests.
test: $(DEV)
	@.ci/ensure-redis-server
	$(PY) -m pytest -q -n auto --dist worksteal --durations=20

# The core suite on the lowest versions pyproject.toml allows, on the lowest Python found.
test-lowest: requirements/lowest.txt pyproject.toml
	@.ci/ensure-redis-server
	@[ -x $(LOW_PY) ] || "$$(.ci/find-python 3.10)" -m venv $(LOW_VENV)
	$(LOW_PY) -m pip install -q --upgrade pip
	$(LOW_PY) -m pip install -q -c requirements/lowest.txt -e '.[sim,redis]' \
		pytest pytest-asyncio trio respx hypothesis
	@[ -x $(HIGH_PY) ] || "$$(.ci/find-python 3.13)" -m venv $(HIGH_VENV)
	$(HIGH_PY) -m pip install -q -c $(LOCK) -e '.[redis]'
	FAILOVER_PYTHON_HIGHEST=$(HIGH_PY) $(LOW_PY) -m pytest -q $(LOWEST_TESTS)

lint: $(DEV)
	$(PY) -m ruff check failover providers tests examples benchmarks
	$(PY) -m mypy

# The documentation site (mkdocs.yml, docs/) into site/: --strict fails on any warning (a
# broken link or anchor, an undocumented public name on an API page). Offline.
docs: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

demo: $(DEMO)
	$(PY) -m failover demo

bench: $(BENCH)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/deadline.py
	$(PY) benchmarks/work_count.py
	$(PY) benchmarks/stream_work_count.py
	$(PY) benchmarks/gateway.py
	$(PY) benchmarks/transport_work_count.py
	$(PY) benchmarks/continuation.py
	$(PY) benchmarks/bare_clients.py
	$(PY) benchmarks/sender_share.py
	$(PY) benchmarks/litellm_compare.py

# A chaos soak (SOAK_REQUESTS=20000 per run by default): every bad column must print 0.
soak: $(DEV)
	$(PY) benchmarks/soak.py

# Refresh the lock with today's newest versions (then run make test and make lint).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e '.[dev,bench]'
	{ sed -n '/^#/p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable \
		| grep -v '^llm-failover'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(LOW_VENV) $(HIGH_VENV) .pytest_cache .mypy_cache .ruff_cache site
