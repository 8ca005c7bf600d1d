"""Which neuron backend may run where: parity checks recorded per machine (verify.py), the per-user cache
they live in (user_cache.py) and `spikesweep doctor`'s table (doctor.py)."""
