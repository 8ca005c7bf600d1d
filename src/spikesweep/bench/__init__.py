"""Benchmarks run by `spikesweep bench <what>`."""
