# promptmill: `make run` (end to end on the bundled samples) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint lock bench clean

# Idempotent: re-installs only when the lock or pyproject.toml changed.
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install --quiet uv==0.13.9
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every command would recompile Airflow's modules.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib/python3.11/site-packages include dags plugins > /dev/null || true
	touch $(STAMP)

run: setup
	$(BIN)/promptmill demo

# Installs or starts what the tests drive for real when missing (PostgreSQL, Chromium, redis-server, ...): see the script.
test: setup
	scripts/test-prerequisites.sh
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check .

lock:
	$(UV) pip compile requirements.in -o requirements.txt --python-version 3.11

bench: setup
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV)
