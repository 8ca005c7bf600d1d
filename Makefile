# Set-up is part of every entry point: a fresh clone needs only `make demo` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# torch/torchvision pinned to the pair that imports together on CPU-only machines (a CUDA build, runs on CPU).
# torchaudio comes with spikingjelly (its speechcommands reader; we read SHD/SSC from HDF5 and never import it):
# pinned too, so every install gets the same one. 2.11 is torchaudio's last line and is built for every torch
# from 2.11 on (its release notes), hence a number that differs from torch's.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.1
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean hdl-tools

include scripts/slurm/slurm.mk

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	$(MAKE) --no-print-directory hdl-tools
	touch $@

# Icarus Verilog simulates the exported FPGA package's reference layer (tests/export/test_verilog.py).
hdl-tools:
	@command -v iverilog >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	  apt-get install -y -qq iverilog; else echo "iverilog missing: run 'sudo make hdl-tools' (its test skips)"; fi; }

demo: $(INSTALLED)
	$(VENV)/bin/spikesweep sweep demo

# Tests marked `slurm` use the cluster from `make slurm-up` when it runs, and skip (saying so) otherwise.
test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

# The shape kept by tools: ruff's rules and the import-linter layer contracts, both in pyproject.toml.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests bench
	PYTHONPATH=src $(VENV)/bin/lint-imports

# `make bench`: the full report (minutes; compiles every shape); `make bench QUICK=1`: seconds, and fails
# when a speed-up ratio fell below half of the committed bench/neuron-quick.csv.
bench: $(INSTALLED)
	$(VENV)/bin/spikesweep bench report $(if $(QUICK),--quick)

clean:
	rm -rf outputs multirun .pytest_cache
