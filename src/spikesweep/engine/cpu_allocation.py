"""How many CPUs this process may use, and how they are split between torch's threads and loader workers.

A job that ignores its allocation oversubscribes the node: torch starts one intra-op thread per core of the
machine and the loader runs in the training process. One decision, used where the run starts (torch's
threads) and where the loaders are built (their workers), so the two always agree.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Workers past 8 stop helping: one worker augments a CIFAR batch at roughly the rate a GPU step of our paper
# models consumes it (bench/notes.md), so 8 leave a wide margin, and each more is a process that holds a copy
# of the dataset's Python objects and adds start-up time to every loader.
MAX_AUTO_WORKERS = 8
#: Set by a packed SLURM task (hydra.launcher.jobs_per_task=K) for each of its K jobs: they share its CPUs.
PACKED_JOBS_ENV = "SPIKESWEEP_PACKED_JOBS"


@dataclass(frozen=True)
class CpuAllocation:
    cpus: int  # this process's share of the allocation
    source: str  # where the allocation came from: "SLURM_CPUS_PER_TASK" or "affinity"
    threads: int  # torch's intra-op threads in the training process
    workers: int  # loader worker processes
    threads_from_env: bool  # OMP_NUM_THREADS was set by the user: torch keeps it

    def describe(self) -> str:
        threads = f"{self.threads} torch threads" + (" (OMP_NUM_THREADS)" if self.threads_from_env else "")
        return f"cpu allocation: {self.cpus} CPUs (from {self.source}): {threads}, {self.workers} loader workers"


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 1 else None


def check_num_workers(value: object) -> int | str:
    """`auto` or an integer >= 0; anything else is a ValueError in one line."""
    if value == "auto" or isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"trainer.num_workers={value!r} must be auto or an integer >= 0")


def cpu_allocation(num_workers: object = "auto", device_type: str = "cuda",
                   environ: Mapping[str, str] | None = None) -> CpuAllocation:
    """The CPUs this process may use (SLURM_CPUS_PER_TASK, else its CPU affinity), shared with the other ranks
    of this node (LOCAL_WORLD_SIZE) and with the other jobs packed into the same task; `auto` workers take all but one of them, capped at MAX_AUTO_WORKERS, and
    torch's threads take the rest (OMP_NUM_THREADS, when set, wins). Training on the CPU, `auto` is 0 workers:
    the model's own step needs those CPUs, and a worker's batches cost inter-process copies (2 cores, CIFAR
    crop+flip: 1,309 samples/s with one worker against 2,133 in the training process, bench/notes.md)."""
    env = os.environ if environ is None else environ
    num_workers = check_num_workers(num_workers)
    slurm = _positive_int(env.get("SLURM_CPUS_PER_TASK"))
    if slurm is not None:
        total, source = slurm, "SLURM_CPUS_PER_TASK"
    else:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        total, source = max(1, len(affinity)), "affinity"
    # SLURM counts CPUs per task: when its tasks are the ranks (srun/submitit, SLURM_NTASKS > 1), each already
    # has its own; ranks that torchrun started inside one task (or one machine's affinity) share theirs.
    own_tasks = slurm is not None and (_positive_int(env.get("SLURM_NTASKS")) or 1) > 1
    ranks = 1 if own_tasks else _positive_int(env.get("LOCAL_WORLD_SIZE")) or 1
    packed = _positive_int(env.get(PACKED_JOBS_ENV)) or 1
    cpus = max(1, total // (ranks * packed))
    if packed > 1:
        source += f", shared by {packed} packed jobs"
    if num_workers != "auto":
        workers = num_workers
    else:
        workers = 0 if device_type == "cpu" else min(MAX_AUTO_WORKERS, cpus - 1)
    omp = _positive_int(env.get("OMP_NUM_THREADS"))
    threads = omp if omp is not None else max(1, cpus - workers)
    return CpuAllocation(cpus=cpus, source=source, threads=threads, workers=workers, threads_from_env=omp is not None)


def apply_threads(allocation: CpuAllocation) -> None:
    """torch's intra-op threads as decided; left alone when the user set OMP_NUM_THREADS (torch read it)."""
    if not allocation.threads_from_env:
        import torch

        torch.set_num_threads(allocation.threads)
