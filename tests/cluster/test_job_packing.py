"""Job packing on the real local SLURM cluster: two jobs of a sweep in one array task (one allocation), each
in its own process and run directory; USR2 to the task checkpoints both, the task is requeued, both resume."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from spikesweep.sweeps.sweep_record import read_tasks
from tests.cluster.test_slurm import LONG, ON_SLURM, _epochs

pytestmark = pytest.mark.slurm


def test_two_packed_jobs_are_preempted_together_and_both_resume(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "spikesweep.cli", "train", "-m", *ON_SLURM, *LONG, "seed=0,1",
         "hydra.launcher.jobs_per_task=2", "hydra.launcher.cpus_per_task=2"],
        cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 240
    while not (runs := sorted(tmp_path.glob("multirun/train/*/[01]"))) or min(len(_epochs(r)) for r in runs) < 1 \
            or len(runs) < 2:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the packed jobs made no progress"
        time.sleep(0.3)
    tasks = read_tasks(runs[0].parent)
    assert set(tasks) == {0, 1} and len(set(tasks.values())) == 1, tasks  # one array task holds both jobs
    subprocess.run(["scancel", "--signal=USR2", tasks[0]], check=True)
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    assert "2 succeeded, 0 failed" in stdout
    allocations = set()
    for run_dir in runs:
        log = (run_dir / "train.log").read_text()
        saved = re.search(r"preempted: saved a mid-epoch checkpoint at epoch (\d+), step (\d+) of 6", log)
        assert saved, f"{run_dir.name}: no mid-epoch checkpoint on USR2"
        epoch, done = map(int, saved.groups())
        assert f"resuming from epoch {epoch}, step {done} of 6" in log
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert summary["steps_this_run"] == 4 * 6 - (epoch * 6 + done), "the requeued job trained some steps again"
        assert [e["epoch"] for e in _epochs(run_dir)] == [0, 1, 2, 3]
        assert "shared by 2 packed jobs" in log
        allocations.add(summary["where"]["slurm_job_id"])
    assert len(allocations) == 1, allocations
