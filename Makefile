# Two commands do all set-up on a fresh machine:
#   make study   runs the default study on the shipped organism
#   make test    runs the test suite (offline)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lenskit-installed
# apt-get needs root: sudo when not root and sudo exists
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: study test lint bench venv clean-venv browser notebooks mutate

venv: $(STAMP)

# torch is installed first and pinned exactly: a looser range can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

study: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/lenskit sweep

# A headless browser for the run report's test (tests/plots/test_report.py); idempotent.
# Without apt or root it says so and the test skips, naming what is missing.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver) || \
	  echo "make browser: could not install chromium/chromium-driver; the report's browser test will be skipped"

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(VENV)/bin/ruff check lenskit tests benchmarks notebooks tools
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 --dist loadgroup

# Re-execute the notebooks in place: their outputs (charts as PNG) are committed so that
# they read online; tests/notebooks checks that they are current. 04 runs its small sweep.
notebooks: $(STAMP)
	cd notebooks && HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 LENSKIT_RUN_DIR=/nonexistent/run \
	  ../$(VENV)/bin/jupyter execute --inplace *.ipynb

# Mutation testing of the core (mutmut), each module against its own tests, one core; outside
# CI. TARGETS= picks modules (tools/mutate.py --list); survivors are recorded in MUTANTS.md.
mutate: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) tools/mutate.py $(TARGETS) --json mutate-last.json

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.run_all

clean-venv:
	rm -rf $(VENV)
