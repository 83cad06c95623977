# Cairn: `make demo` runs Cairn with demo data; `make test` runs the tests.
# Needs only python3 (>= 3.11) and make; everything else is installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo serve test conformance kill-hunt fuzz clean

$(BIN)/cairn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/cairn

# Cairn on SQLite under ./cairn-data with the demo facility, at http://127.0.0.1:8080/icat;
# prints how to sign in. PORT=8123 picks another port; SCALE=3 makes a bigger facility and
# FILE_SIZE=1M bigger datafiles (both only when ./cairn-data is still empty).
demo: install
	$(BIN)/cairn serve --demo $(if $(PORT),--port $(PORT)) $(if $(SCALE),--scale $(SCALE)) \
		$(if $(FILE_SIZE),--file-size $(FILE_SIZE))

serve: install
	$(BIN)/cairn serve

# Lint, types and all tests; PostgreSQL and MariaDB tests run when those servers are
# reachable, else skip. The portal's browser tests run in a second process (they skip where
# no chromium is installed).
test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q $(PYTEST_ARGS)
	CAIRN_BROWSER_TESTS=1 $(BIN)/pytest -n 2 -q $(PYTEST_ARGS) tests/browser

# python-icat 1.7.0's own test suite against fresh Cairns: the whole suite on single-level
# storage and, side by side, its data-service tests on two-level storage. Fails if
# anything fails in either; prints one summary line per configuration.
conformance: install
	$(BIN)/python tests/conformance/python_icat/run.py

# The kill hunt: CAIRN_KILLS (default 100) SIGKILLs of a real server at random moments of
# puts, archive writes, restores and deletes, each followed by a restart and a check that
# catalogue, storage and cache show the operation whole or not begun, with nothing left
# behind (about 10 minutes; on SQLite unless CAIRN_TEST_BACKENDS says otherwise). Prints
# what the kills hit. CAIRN_KILL_SEED repeats a hunt.
kill-hunt: install
	CAIRN_KILL_HUNT=1 CAIRN_TEST_BACKENDS=$${CAIRN_TEST_BACKENDS:-sqlite} \
		$(BIN)/pytest -q -s tests/integration/test_crash_cleanup.py -k kill_hunt

# The fuzz hunt: random hostile inputs on every surface (query text, JSON entities, SOAP
# envelopes, data-service parameters and headers, dump files) of a real server, each surface
# for CAIRN_FUZZ_SECONDS (default 300: about 25 minutes), on SQLite unless
# CAIRN_TEST_BACKENDS says otherwise. Fails on any INTERNAL error, hang or dead server,
# showing the smallest input found; prints how many inputs it tried.
fuzz: install
	CAIRN_FUZZ_RANDOM=1 CAIRN_FUZZ_SECONDS=$${CAIRN_FUZZ_SECONDS:-300} \
		CAIRN_FUZZ_EXAMPLES=$${CAIRN_FUZZ_EXAMPLES:-500} \
		CAIRN_TEST_BACKENDS=$${CAIRN_TEST_BACKENDS:-sqlite} \
		$(BIN)/pytest -q -s tests/integration/test_fuzz_surfaces.py

clean:
	rm -rf $(VENV) cairn-data .pytest_cache
