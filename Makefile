# FLAP: the two commands are `make demo` and `make test`; both install first if needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast wheel-test demo app proxy preview benchmark lint clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23"
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -c constraints.txt -e ".[dev,app,eval]"
	touch $(STAMP)

# The whole suite, slow tests included (about 12 minutes on 2 idle CPU cores; CI runs this).
test: install
	$(PY) -m pytest -m "not benchmark" $(PYTEST_ARGS)

# Quick loop while developing: skips the tests marked slow (real-clip sweeps, DDP, the demo run).
test-fast: install
	$(PY) -m pytest -m "not slow and not benchmark" $(PYTEST_ARGS)

# Build a wheel, install it into a fresh venv outside the checkout, run generate + evaluate (CI runs this).
wheel-test: install
	PY=$(abspath $(PY)) bash .ci/wheel_test

# The bundled demo: person-specific model, held-out portrait, speech, and a head-motion script.
DEMO_POSE ?= turn_left
demo: install
	$(PY) -m flap.generate pose=$(DEMO_POSE) $(ARGS)

# The web studio on http://127.0.0.1:7860 (ARGS="--port 8080 --host 0.0.0.0" to change).
app: install
	$(PY) -m flap.app $(ARGS)

proxy: install
	$(PY) -m flap.flame.proxy

preview: install
	$(PY) tools/preview_flame.py

benchmark: install
	$(PY) tools/benchmark.py

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) flame_assets/proxy_flame.npz
