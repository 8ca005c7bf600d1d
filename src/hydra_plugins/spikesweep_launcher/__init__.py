"""spikesweep's SLURM launcher: submitit's, with one-line errors (conf/hydra/launcher/slurm.yaml)."""
