# FLAP: the two commands are `make demo` and `make test`; both install first if needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-all demo proxy preview benchmark lint clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23"
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Whole suite except tests marked slow/benchmark (keeps under 15 minutes on 2 CPU cores).
test: install
	$(PY) -m pytest -m "not slow and not benchmark" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(PY) -m flap.generate $(ARGS)

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
