# faultproof — two commands for a fresh machine: `make devnet` and `make test`.
# Everything else here is plumbing those two call.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
NPM_STAMP := circuits/node_modules/.setup-stamp
EVM_STAMP := contracts/node_modules/.setup-stamp
ARGS   ?=
# The setup steps that do not need each other (pip, the two npm installs) run side by side: on a
# fresh clone that is ~25 s of `make test`'s budget. Recipes' output may interleave; each is quiet.
MAKEFLAGS += --jobs=3

# Debian packages the project needs (tokens, TPM, compilers, browser, broker). Each concern appends
# its own to this list; `make setup` installs only the missing ones (apt-get update once, as root).
APT_PACKAGES := softhsm2 swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config g++ nasm libgmp-dev nlohmann-json3-dev chromium mosquitto
APT_STAMP := $(VENV)/.apt-stamp
# Native (C++) witness generators for the shipped window sizes, built into the circuit cache
# ($FAULTPROOF_CACHE_DIR or .cache/circuits/witness/); provers fall back to WebAssembly without them.
WITNESS_STAMP := .cache/native-witness.stamp
WITNESS_SIZES ?= 16 64
# circomlib's Poseidon in C (faultproof/native), loaded by faultproof.chain; without it (no compiler,
# or not built yet) faultproof.chain uses light-poseidon, the same values ~2x slower.
POSEIDON_LIB := .cache/native/libfp_poseidon.so

.PHONY: setup devnet test bench lint clean dashboard-screenshots sim

# The venv is rebuilt only when pyproject.toml changes; node_modules only when the lock changes.
$(STAMP): pyproject.toml | $(APT_STAMP)  # a source build (tpm2-pytss) may need the Debian headers
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (README: prerequisites)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NPM_STAMP): circuits/package.json circuits/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (README: prerequisites)"; exit 1; }
	cd circuits && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The EVM settlement backend (DESIGN §13): solc, OpenZeppelin and anvil from npm, pinned by the lock.
# anvil's postinstall only downloads a binary the platform package already ships, so scripts stay off.
$(EVM_STAMP): contracts/package.json contracts/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (README: prerequisites)"; exit 1; }
	cd contracts && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
	touch $@

$(APT_STAMP): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "error: Debian packages missing ($$missing) and no apt-get: install them by hand"; exit 1; }; \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $@

# g++ + nasm on circom2's --c output: ~20-45 s per window size, once (the stamp tracks the circuit).
$(WITNESS_STAMP): circuits/faultproof.circom $(APT_STAMP) $(STAMP) $(NPM_STAMP)
	$(BIN)/faultproof circuits witness $(foreach n,$(WITNESS_SIZES),--n $(n))
	@mkdir -p $(dir $@) && touch $@

$(POSEIDON_LIB): faultproof/native/poseidon.c faultproof/native/build.py $(APT_STAMP) $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m faultproof.native.build $@

setup: $(APT_STAMP) $(STAMP) $(NPM_STAMP) $(EVM_STAMP) $(WITNESS_STAMP) $(POSEIDON_LIB)

devnet: setup
	$(BIN)/faultproof devnet $(ARGS)

# pytest-xdist workers: about half of a serial run's time is spent waiting on the processes a test
# starts, so more workers than cores fill it (measured on 2 cores, warm caches: serial ~780 s, two
# workers ~395 s, three 318 s). tests/conftest.py keeps a shared network's folder on one worker and
# gives each worker its own ports. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 3
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(ARGS)

# The protocol simulator's long soak (tests/sim): `make sim SEEDS=100000`; a failing seed is printed
# and `python -m tests.sim --seed N` replays it. `make test` runs 2,000 seeds.
SEEDS ?= 100000
sim: setup
	$(BIN)/python -m tests.sim --seeds $(SEEDS) --workers 2

bench: setup
	$(BIN)/python -m benchmarks.run $(ARGS)

# The dashboard's screenshots in docs/dashboard.md: the browser tests against a real network write them.
dashboard-screenshots: setup
	FAULTPROOF_DASHBOARD_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q tests/dashboard/test_browser.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy faultproof agent oracle ledger cli dashboard

clean:
	rm -rf $(VENV) circuits/node_modules contracts/node_modules .cache
