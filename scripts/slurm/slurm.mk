# The project's single-node SLURM cluster (scripts/slurm/). Included from the main Makefile.
#   make slurm-up                        start (installs Debian packages on first use; needs root)
#   . .slurm/slurm.env                   point this shell's SLURM clients at it (export SLURM_CONF=...)
#   make slurm-down                      stop what slurm-up started; SLURM_PURGE=1 also deletes its state
# Knobs, as make or environment variables (more in scripts/slurm/up.sh):
#   SLURM_ACCOUNTING=1  MariaDB + slurmdbd, so submitit sees cancelled/killed jobs end (costs ~50 s of
#                       packages once, ~11 s on a fresh start, ~2 s later starts); 0 turns it off
#   SLURM_FAKE_GPUS=2   gres gpu:2 on dummy devices, so GPU scheduling is exercised without a GPU
#   SLURM_NODE_CPUS=8   SLURM_BASE=.slurm
SLURM_ACCOUNTING ?= 1
SLURM_FAKE_GPUS ?= 2

.PHONY: slurm-up slurm-down

slurm-up:
	SLURM_ACCOUNTING=$(SLURM_ACCOUNTING) SLURM_FAKE_GPUS=$(SLURM_FAKE_GPUS) bash scripts/slurm/up.sh

slurm-down:
	bash scripts/slurm/down.sh $(if $(filter 1,$(SLURM_PURGE)),--purge)
