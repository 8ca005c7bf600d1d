"""A sweep larger than the cluster's MaxArraySize goes in as several job arrays (sbatch refuses a longer one),
every job mapped to its array task for `status`. Submitted detached and held, so nothing runs; then cancelled."""

import subprocess
import sys

import pytest

from hydra_plugins.spikesweep_launcher.slurm_launcher import max_array_size
from spikesweep.sweeps.sweep_record import read_tasks
from tests.cluster.test_slurm import ON_SLURM

pytestmark = pytest.mark.slurm


def test_a_sweep_over_max_array_size_is_split_into_arrays(tmp_path):
    limit = max_array_size()
    jobs = limit + 2
    out = subprocess.run(
        [sys.executable, "-m", "spikesweep.cli", "train", "-m", *ON_SLURM, "logger=none", f"seed=range(0,{jobs})",
         "hydra.sweeper.detach=true", "+hydra.launcher.additional_parameters.hold=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    (sweep_dir,) = (tmp_path / "multirun" / "train").iterdir()
    tasks = read_tasks(sweep_dir)
    arrays = sorted({task.split("_")[0] for task in tasks.values()}, key=int)
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"({jobs} jobs in {jobs} tasks)" in out.stdout
        assert sorted(tasks) == list(range(jobs)) and len(set(tasks.values())) == jobs
        assert len(arrays) == 2, arrays
        first, second = ([n for n, t in tasks.items() if t.startswith(f"{a}_")] for a in arrays)
        assert first == list(range(limit)) and second == [limit, limit + 1]  # in job order, the rest in the second
        assert tasks[limit] == f"{arrays[1]}_0"
        queued = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)], capture_output=True,
                                text=True, check=True).stdout.split()
        assert len(queued) == jobs, "every task is queued (held), none was refused"
    finally:
        subprocess.run(["scancel", *arrays], check=False)
        subprocess.run(["scancel", "--name=sweep-summary"], check=False)
