"""Issue 21 item 5: torch's threads and the loader's workers follow the job's CPU allocation."""

import os

import pytest

from spikesweep.config_schema import ConfigError, validate
from spikesweep.engine.cpu_allocation import MAX_AUTO_WORKERS, PACKED_JOBS_ENV, cpu_allocation
from tests.conftest import REPO, SMOKE, compose, run_cli

CLEAN = ("SLURM_CPUS_PER_TASK", "SLURM_NTASKS", "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS", PACKED_JOBS_ENV)


@pytest.fixture
def cpus(monkeypatch):
    """The allocation's inputs: no SLURM, no torchrun, no OMP_NUM_THREADS, and an affinity of `n` CPUs."""
    for name in CLEAN:
        monkeypatch.delenv(name, raising=False)

    def affinity(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    affinity(64)
    return affinity


def test_slurm_cpus_per_task_less_one_for_the_training_process(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    got = cpu_allocation("auto")
    assert (got.cpus, got.source, got.workers, got.threads) == (6, "SLURM_CPUS_PER_TASK", 5, 1)
    assert got.describe() == "cpu allocation: 6 CPUs (from SLURM_CPUS_PER_TASK): 1 torch threads, 5 loader workers"


def test_auto_workers_are_capped(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "32")
    got = cpu_allocation("auto")
    assert (got.workers, got.threads) == (MAX_AUTO_WORKERS, 32 - MAX_AUTO_WORKERS)


def test_one_cpu_of_affinity_loads_in_the_training_process(cpus):
    cpus(1)
    got = cpu_allocation("auto")
    assert (got.cpus, got.source, got.workers, got.threads) == (1, "affinity", 0, 1)


def test_local_ranks_share_the_allocation(cpus, monkeypatch):
    cpus(12)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert (cpu_allocation("auto").cpus, cpu_allocation("auto").workers) == (6, 5)
    # srun's tasks are the ranks: SLURM_CPUS_PER_TASK is already each one's own
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert cpu_allocation("auto").cpus == 6
    monkeypatch.setenv("SLURM_NTASKS", "1")  # torchrun's two ranks inside one task
    assert cpu_allocation("auto").cpus == 3


def test_jobs_packed_into_one_task_share_its_cpus(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")
    monkeypatch.setenv(PACKED_JOBS_ENV, "4")
    got = cpu_allocation("auto")
    assert (got.cpus, got.workers, got.threads) == (4, 3, 1)
    assert got.describe() == ("cpu allocation: 4 CPUs (from SLURM_CPUS_PER_TASK, shared by 4 packed jobs): "
                              "1 torch threads, 3 loader workers")


def test_omp_num_threads_is_respected(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    got = cpu_allocation("auto")
    assert (got.threads, got.threads_from_env, got.workers) == (4, True, 5)


def test_explicit_workers_are_kept_and_threads_take_the_rest(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert (cpu_allocation(0).workers, cpu_allocation(0).threads) == (0, 6)
    assert (cpu_allocation(12).workers, cpu_allocation(12).threads) == (12, 1)


@pytest.mark.parametrize("value", ["-2", "banana", "1.5", "true"])
def test_bad_num_workers_is_refused_in_one_line(value):
    with pytest.raises(ConfigError, match=r"^trainer\.num_workers=\S+ must be auto or an integer >= 0$"):
        validate(compose(f"trainer.num_workers={value}"))
    with pytest.raises(ValueError, match="must be auto or an integer >= 0"):
        cpu_allocation(-2)


def test_the_default_is_auto():
    assert compose().trainer.num_workers == "auto"
    validate(compose("trainer.num_workers=3"))


def test_training_on_the_cpu_keeps_its_cpus_for_the_model(cpus, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    got = cpu_allocation("auto", "cpu")
    assert (got.workers, got.threads) == (0, 6)
    assert cpu_allocation(2, "cpu").workers == 2  # an explicit count is the user's


def test_a_run_logs_its_allocation_and_trains_with_its_workers(tmp_path):
    """The real CLI under a 3-CPU SLURM allocation (run_cli sets OMP_NUM_THREADS=1, as a user may), on the
    CPU with two workers asked for."""
    done = run_cli("train", *SMOKE, "trainer.max_steps_per_epoch=2", "trainer.num_workers=2",
                   f"hydra.run.dir={tmp_path}", cwd=REPO, env={"SLURM_CPUS_PER_TASK": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("cpu allocation: 3 CPUs (from SLURM_CPUS_PER_TASK): 1 torch threads (OMP_NUM_THREADS), 2 loader workers"
            in (tmp_path / "train.log").read_text())
