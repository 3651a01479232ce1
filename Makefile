# Two entry points for a new user: `make demo` and `make test`. Both set up .venv first,
# idempotently. On a machine without CUDA, torch==2.13.0 (the CPU build) is installed before
# the project, so that nothing pulls the multi-gigabyte CUDA wheels.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The shared weights and photos: AMP_SHARED_DIR, as the tests read it, else beside the checkout.
SHARED ?= $(or $(AMP_SHARED_DIR),../shared)
STAMP  := $(VENV)/.amp-installed

# The official realesr-general-x4v3 weights are fetched with `amp models fetch`; offline, the
# demo falls back to the real (third-party copy of) realesr-animevideov3 weights in ../shared.
SHARED_MODEL := $(SHARED)/models/unofficial/realesr-animevideov3.third-party-copy.pth
DEMO_MODEL   ?= $(if $(wildcard $(SHARED_MODEL)),$(SHARED_MODEL),realesr-general-x4v3)
DEMO_PHOTOS  ?= $(wildcard $(SHARED)/faces/kit_harington/john2.jpg $(SHARED)/faces/paul_allen/paul_allen.jpg \
                           $(SHARED)/faces/steve_wozniak/steve_wozniak3.jpg $(SHARED)/faces/barack_obama/obama.jpg)
DEMO_OUT     ?= demo-out

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    echo "CUDA GPU found: installing the CUDA build of torch"; $(BIN)/pip install -q torch; \
	  else \
	    echo "no CUDA GPU: installing torch==2.13.0 (CPU build) first"; $(BIN)/pip install -q torch==2.13.0; \
	  fi; \
	fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	@test -n "$(DEMO_PHOTOS)" || { echo "no sample photos under $(SHARED)/faces:" \
	  "put the shared folder beside this checkout or set AMP_SHARED_DIR=/path/to/shared"; exit 1; }
	$(BIN)/amp enhance $(DEMO_PHOTOS) --out $(DEMO_OUT) --model $(DEMO_MODEL) --scale 2 \
	  --path-template 'year={year}/month={month}/{filename}'
	@echo "enhanced photos are under $(DEMO_OUT)/"

test: setup
	AMP_SHARED_DIR=$(abspath $(SHARED)) $(BIN)/python -m pytest

lint: setup
	$(BIN)/python -m ruff check engine tests benchmarks scripts

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
