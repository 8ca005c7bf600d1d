"""spikesweep's Hydra plugins: Hydra loads plugin classes only from the hydra_plugins namespace."""
