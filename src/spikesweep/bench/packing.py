"""Job packing (`hydra.launcher.jobs_per_task=K`): K small jobs sharing one allocation, against one job alone.

A packed SLURM task starts its K jobs at once, each a process of its own told by SPIKESWEEP_PACKED_JOBS to take
1/K of the allocation's CPUs; this starts the same K processes here, on the device a run picks (the GPU when
there is one, so the K share it), and reads each one's training throughput from its metrics.jsonl.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spikesweep.engine.cpu_allocation import PACKED_JOBS_ENV

#: The sweep job packing is for: a small network on a small dataset, a few epochs.
JOB = ("dataset=digits", "model=small_cnn", "trainer.epochs=2", "logger=none")


def _train_rate(run_dir: Path) -> float:
    """Samples per second of the job's training steps, over its epochs."""
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(e["epoch_time_s"] for e in epochs)
    return sum(e["samples_per_s"] * e["epoch_time_s"] for e in epochs) / seconds


def _packed(k: int, overrides: tuple[str, ...]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "spikesweep.cli", "train", *overrides, f"seed={i}",
                                   f"hydra.run.dir={folder}/{i}"], env={**os.environ, PACKED_JOBS_ENV: str(k)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(k)]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"a packed job failed (exit {proc.returncode}): {err.strip()[-300:]}")
        wall = time.perf_counter() - started
        rates = [_train_rate(Path(folder) / str(i)) for i in range(k)]
    return {"jobs_per_task": k, "wall_s": round(wall, 2), "samples_per_s": round(sum(rates), 1),
            "per_job_samples_per_s": round(sum(rates) / k, 1)}


def bench_packing(jobs: tuple[int, ...] = (1, 2, 4), overrides: tuple[str, ...] = JOB) -> list[dict[str, Any]]:
    """One row per K: wall time of the K jobs, their summed training samples/s, and that throughput against
    K=1's (`throughput_x`). The first K warms the dataset cache, so list 1 first."""
    rows = [_packed(k, overrides) for k in jobs]
    for row in rows:
        row["throughput_x"] = round(row["samples_per_s"] / rows[0]["samples_per_s"], 2)
        row["jobs_per_hour_x"] = round(rows[0]["wall_s"] * row["jobs_per_task"] / row["wall_s"], 2)
    return rows
