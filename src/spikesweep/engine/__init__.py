"""The training engine: a loop over [T, B, ...] models that knows nothing of any paper."""
