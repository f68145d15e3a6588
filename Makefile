# `make demo` and `make test` each build .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint format bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) examples/demo.py

test: $(VENV)/.installed-dev lint
	$(PY) -m pytest tape tests README.md

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check tape tests benchmarks examples notebooks
	$(PY) -m ruff format --check tape tests benchmarks examples notebooks

format: $(VENV)/.installed-dev
	$(PY) -m ruff check --fix tape tests benchmarks examples notebooks
	$(PY) -m ruff format tape tests benchmarks examples notebooks

# The comparison with PyTorch, HIPS autograd, JAX and hand-written NumPy (the `bench` extra), written to
# benchmarks/results/. Extra arguments: make bench BENCH_ARGS="--quick --engines tape,torch".
bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
