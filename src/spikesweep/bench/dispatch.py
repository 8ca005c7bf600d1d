"""Sweep dispatch: composing every job of a 100-point sweep (what `--dry-run` and the launcher do), and,
when a SLURM cluster answers ($SLURM_CONF), submitting the sweep as a job array: submitit's own cost, and
the whole command a user types, from its start until SLURM lists every task, for that sweep and for a
1,000-point one (target: 10 s)."""

import os
import subprocess
import sys
import tempfile
import time

from spikesweep.compose import compose_config
from spikesweep.config_schema import validate


#: The survey's tables times seeds, surrogates and widths: the sweep size the 10 s dispatch target is for.
SCALE = 1000


def _noop(_: int) -> int:
    return 0


def _queued(name: str) -> int:
    """Tasks of the arrays called `name` that SLURM knows of (pending, running or ended)."""
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-n", name, "-o", "%i"], capture_output=True, text=True,
                         check=True)
    return len(out.stdout.split())


def _submitit_array(points: int) -> float:
    import submitit

    name = f"bench-array-{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(timeout_min=5, cpus_per_task=1, slurm_array_parallelism=points, name=name)
        started = time.perf_counter()
        executor.map_array(_noop, range(points))
        submitted = time.perf_counter() - started
        queued = _queued(name)
        subprocess.run(["scancel", "-n", name], check=True)
    if queued != points:
        raise RuntimeError(f"submitted a {points}-task array but SLURM lists {queued} of its tasks")
    return submitted


def _sweep_command(points: int) -> float:
    """`spikesweep train -m hydra/launcher=slurm ... seed=range(N)`: start to every task queued.

    The command then waits for its jobs; they are cancelled and the command stopped once all are queued.
    """
    name = f"bench-sweep-{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder:
        cmd = [
            sys.executable, "-m", "spikesweep.cli", "train", "-m", "hydra/launcher=slurm", "+cluster=local_slurm",
            f"name={name}", f"hydra.sweep.dir={folder}/sweep", "logger=none", f"seed=range({points})",
        ]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while _queued(name) < points:
                if proc.poll() is not None:
                    tail = proc.stderr.read()[-500:] if proc.stderr else ""
                    raise RuntimeError(f"the sweep exited (code {proc.returncode}) before submitting: {tail}")
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"the sweep's {points} tasks were not all queued after 300 s")
                time.sleep(0.05)
            return time.perf_counter() - started
        finally:
            subprocess.run(["scancel", "-n", name], check=False)
            proc.terminate()
            proc.communicate()


def bench_dispatch(points: int = 100) -> list[dict[str, float | str]]:
    started = time.perf_counter()
    for seed in range(points):
        validate(compose_config([f"seed={seed}", "surrogate=atan"]))
    rows: list[dict[str, float | str]] = [
        {"case": f"compose + validate {points} jobs", "seconds": time.perf_counter() - started, "target_s": 15.0}
    ]
    if os.environ.get("SLURM_CONF"):
        rows.append({"case": f"submitit: {points}-task job array", "seconds": _submitit_array(points),
                     "target_s": 15.0})
        for size, target in ((points, 15.0), (SCALE, 10.0)):
            rows.append({"case": f"spikesweep train -m on SLURM: {size} points (start to all queued)",
                         "seconds": _sweep_command(size), "target_s": target})
    return rows
