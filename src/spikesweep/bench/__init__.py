"""Benchmarks: throughput and memory of models, neurons and data paths."""
