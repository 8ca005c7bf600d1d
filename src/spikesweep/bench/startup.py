"""How long a user waits: `spikesweep list`, and a one-step digits run from launch to exit, measured as
whole processes (imports, composition, data, model, one optimizer step, evaluation, files).

Wall time is what the user sees; CPU time (user + system of the child) is reported beside it because on a
shared machine it moves far less with the load than wall time does, so it is the figure to compare
between commits."""

import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall_and_cpu(args: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `spikesweep ARGS` over `repeats` fresh processes (after one warm-up
    run, which also fills the caches a repeated run finds: bytecode, the OS file cache, the digits split)."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as cwd:
        for i in range(repeats + 1):
            started, cpu = time.perf_counter(), _cpu_of_children()
            subprocess.run([sys.executable, "-m", "spikesweep.cli", *args], cwd=cwd, check=True, capture_output=True)
            if i:
                walls.append(time.perf_counter() - started)
                cpus.append(_cpu_of_children() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def bench_startup(repeats: int = 3) -> list[dict[str, float | str]]:
    one_step = ["train", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none"]
    rows: list[dict[str, float | str]] = []
    for case, args, target in (("spikesweep list", ["list"], 1.5),
                               ("spikesweep train, 1 step + eval (digits)", one_step, 5.0)):
        wall, cpu = _wall_and_cpu(args, repeats)
        rows.append({"case": case, "seconds": wall, "cpu_s": cpu, "target_s": target})
    return rows
