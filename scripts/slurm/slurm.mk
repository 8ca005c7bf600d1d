# The project's single-node SLURM cluster (scripts/slurm/). Included from the main Makefile.
#   make slurm-up                        start (installs packages on first use; needs root)
#   eval "$$(cat .slurm/slurm.env)"      then point the clients at it: export SLURM_CONF=...
#   make slurm-down                      stop what slurm-up started (SLURM_PURGE=1: also delete its state)
# Knobs (make or environment variables): SLURM_ACCOUNTING (default 1), SLURM_NODE_CPUS (8),
# SLURM_FAKE_GPUS (2 here, so `make slurm-up` clusters exercise GPU scheduling), SLURM_BASE.
SLURM_FAKE_GPUS ?= 2

.PHONY: slurm-up slurm-down

slurm-up:
	SLURM_FAKE_GPUS=$(SLURM_FAKE_GPUS) bash scripts/slurm/up.sh

slurm-down:
	bash scripts/slurm/down.sh $(if $(filter 1,$(SLURM_PURGE)),--purge)
