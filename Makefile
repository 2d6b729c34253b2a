# faultproof — two commands for a fresh machine: `make devnet` and `make test`.
# Everything else here is plumbing those two call.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
NPM_STAMP := circuits/node_modules/.setup-stamp
ARGS   ?=

.PHONY: setup devnet test bench lint clean

# The venv is rebuilt only when pyproject.toml changes; node_modules only when the lock changes.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (README: prerequisites)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NPM_STAMP): circuits/package.json circuits/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (README: prerequisites)"; exit 1; }
	cd circuits && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) $(NPM_STAMP)

devnet: setup
	$(BIN)/faultproof devnet $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

bench: setup
	$(BIN)/python -m benchmarks.run $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy faultproof agent oracle ledger cli

clean:
	rm -rf $(VENV) circuits/node_modules .cache
