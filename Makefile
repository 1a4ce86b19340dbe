# mdllm-kit: two commands on a fresh machine.
#   make demo   - create .venv if missing, install, run the whole pipeline on the bundled AdK data
#   make test   - install the dev extra and run the whole test suite
#
# torch is installed first, pinned: an unpinned torch pulls gigabytes of CUDA packages on
# machines that only need the CPU build. Users with a GPU get the CUDA build of the same
# version from the normal index, or override: make demo TORCH_SPEC="torch==2.13.0 --index-url ..."

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT   ?= demo_output
PYTEST_ARGS ?=

PY    := $(VENV)/bin/python
STAMP := $(VENV)/.mdllm-installed
DEV_STAMP := $(VENV)/.mdllm-dev-installed

.PHONY: demo test install install-dev clean help

help:
	@echo "make demo   - install and run the end-to-end demo (writes $(DEMO_OUT)/report.html, metrics.json)"
	@echo "make test   - install the dev extra and run the test suite"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/mdllm demo --out $(DEMO_OUT)

test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
