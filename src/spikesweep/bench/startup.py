"""How long a user waits: `spikesweep list`, and a one-step digits run from launch to exit, measured as
whole processes (imports, composition, data, model, one optimizer step, evaluation, files)."""

import statistics
import subprocess
import sys
import tempfile
import time


def _wall(args: list[str], repeats: int) -> float:
    """Median wall time of `spikesweep ARGS` over `repeats` fresh processes (after one warm-up run)."""
    times = []
    with tempfile.TemporaryDirectory() as cwd:
        for i in range(repeats + 1):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "spikesweep.cli", *args], cwd=cwd, check=True, capture_output=True)
            if i:  # the first run warms the OS file cache and bytecode
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_startup(repeats: int = 3) -> list[dict[str, float | str]]:
    one_step = ["train", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none"]
    return [
        {"case": "spikesweep list", "seconds": _wall(["list"], repeats), "target_s": 1.5},
        {"case": "spikesweep train, 1 step + eval (digits)", "seconds": _wall(one_step, repeats), "target_s": 5.0},
    ]
