"""Sweep dispatch: composing every job of a 100-point sweep (what `--dry-run` and the launcher do), and,
when a SLURM cluster answers, submitting 100 array tasks through submitit."""

import os
import tempfile
import time

from spikesweep.compose import compose_config
from spikesweep.config_schema import validate


def _noop(_: int) -> int:
    return 0


def bench_dispatch(points: int = 100) -> list[dict[str, float | str]]:
    started = time.perf_counter()
    for seed in range(points):
        validate(compose_config([f"seed={seed}", "surrogate=atan"]))
    rows: list[dict[str, float | str]] = [
        {"case": f"compose + validate {points} jobs", "seconds": time.perf_counter() - started, "target_s": 15.0}
    ]
    if os.environ.get("SLURM_CONF"):
        import submitit

        with tempfile.TemporaryDirectory() as folder:
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
            executor.update_parameters(timeout_min=5, cpus_per_task=1, slurm_array_parallelism=points)
            started = time.perf_counter()
            jobs = executor.map_array(_noop, range(points))
            submitted = time.perf_counter() - started
            for job in jobs:
                job.cancel(check=False)
        rows.append({"case": f"submit a {points}-task job array", "seconds": submitted, "target_s": 15.0})
    return rows
