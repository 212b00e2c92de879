# The two commands of the README's quick start. Both create .venv and install
# everything they need, on a machine with only Python 3.11+ installed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: bench test test-fast bench-micro fuzz clean clean-cache

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools announces every editable install with an InformationOnly warning ("Editable
	@# installation. Please be careful with folders ... same name as your package"): alloclab's
	@# folders are mapped to alloclab.* and none is named alloclab, so that one message is filtered
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# the quick suite + report; prints the claims' verdicts, the geomeans and the path of index.html
bench: $(STAMP)
	$(BIN)/alloclab bench --suite quick --report

# the tests, then the micro-suite once with timing off (a smoke run: a broken micro-benchmark fails here)
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q tests/benchmarks --benchmark-disable

# pytest-benchmark micro-suite, timed; each run saved under .benchmarks/ (see README, Benchmarks)
bench-micro: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-only --benchmark-autosave

# a longer fuzz run for local use (see README)
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests -k "random_sequences or fuzz"

clean-cache:
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/alloclab

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
