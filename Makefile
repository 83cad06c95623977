# Cairn: `make demo` runs Cairn with demo data; `make test` runs the tests.
# Needs only python3 (>= 3.11) and make; everything else is installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo serve test conformance clean

$(BIN)/cairn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/cairn

# Cairn on SQLite under ./cairn-data with the demo facility, at http://127.0.0.1:8080/icat
demo: install
	$(BIN)/cairn serve --demo

serve: install
	$(BIN)/cairn serve

# Lint, types and all tests; PostgreSQL and MariaDB tests run when those servers are
# reachable, else skip.
test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q $(PYTEST_ARGS)

# python-icat 1.7.0's own test suite against fresh Cairns: the whole suite on single-level
# storage, then its data-service tests on two-level storage (about 14 minutes). Fails if
# anything fails in either; prints one summary line per configuration.
conformance: install
	$(BIN)/python tests/conformance/python_icat/run.py

clean:
	rm -rf $(VENV) cairn-data .pytest_cache
