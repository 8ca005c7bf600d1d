"""What a sweep's SLURM array task runs: one job (`SweepJob`), or K packed jobs (`PackedJobs`).

Both read the launcher and Hydra's state from one pickle written per submission (`save_launcher`), so that
queueing 1,000 jobs pickles them once.

Job packing: K jobs of a sweep share one SLURM allocation (`hydra.launcher.jobs_per_task=K`).

Small SNN jobs leave most of a GPU idle, so one array task runs K jobs at once, each in a process of its own
with its own run directory, checkpoints, resume and wandb run: the child runs exactly what an unpacked array
task runs (the launcher's call for that job), so a packed job behaves as an unpacked one. The CPUs of the
allocation are split between the K (SPIKESWEEP_PACKED_JOBS, read by engine/cpu_allocation.py).

Preemption: the task's `Preemption` takes SLURM's warning signal and forwards it to every child still running;
each saves a mid-epoch checkpoint and exits; then the task hands the signal to submitit, which calls
`checkpoint()` and requeues it with only the jobs that had not finished, carrying the finished ones' results.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from spikesweep.engine.cpu_allocation import PACKED_JOBS_ENV
from spikesweep.engine.preemption import EX_TEMPFAIL, Preemption, preemption_signal

#: One job as the launcher calls it, less Hydra's state: (overrides, "hydra.sweep.dir", job number, job id).
JobParams = tuple[list[str], str, int, str]


def save_launcher(launcher: Any, folder: Path) -> Path:
    """Pickle the launcher and Hydra's state once per submission: each array task's own pickle then holds
    only its path and its job's overrides (a 1,000-job array pickled them 1,000 times: 63 KB and 16 ms each)."""
    import cloudpickle
    from hydra.core.singleton import Singleton

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"launcher-{uuid.uuid4().hex}.pkl"
    path.write_bytes(cloudpickle.dumps((launcher, Singleton.get_state())))
    return path


def run_job(shared: Path, params: JobParams) -> JobReturn:
    """One job, as hydra-submitit-launcher's array task runs it (its __call__), from the shared pickle."""
    import cloudpickle

    launcher, state = cloudpickle.loads(shared.read_bytes())
    return launcher(*params, state)


class SweepJob:
    """The callable of one array task of an unpacked sweep: one job."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared

    def __call__(self, *params: Any) -> JobReturn:
        return run_job(self.shared, params)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """On preemption or timeout: the same job again (it resumes from its own checkpoint)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class PackedJobs:
    """The callable of one array task of a packed sweep."""

    def __init__(self, shared: Path, pack_dir: Path) -> None:
        self.shared = shared  # the sweep's SlurmLauncher and Hydra's state (save_launcher)
        self.pack_dir = pack_dir  # where the children's calls and results are pickled

    def __call__(self, jobs: list[JobParams], finished: dict[int, JobReturn] | None = None) -> list[JobReturn]:
        finished = dict(finished or {})
        with Preemption() as preemption:
            children = {params[2]: self._start(params, len(jobs)) for params in jobs if params[2] not in finished}
            forwarded = False
            while any(child.poll() is None for child in children.values()):
                if preemption.requested() and not forwarded:
                    for child in children.values():
                        if child.poll() is None:
                            child.send_signal(preemption.signum)
                    forwarded = True
                time.sleep(0.2)
        for number, child in children.items():
            result = self._result(number, child.returncode)
            if result is not None:
                finished[number] = result
        remaining = [params for params in jobs if params[2] not in finished]
        if preemption.requested() and remaining:
            self._requeue_args = (remaining, finished)
            preemption.deliver()  # submitit: checkpoint() below, scontrol requeue, exit
        return [finished[params[2]] for params in jobs]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Requeue with the jobs that did not finish (preempted), and the results of those that did."""
        import submitit

        del args, kwargs
        return submitit.helpers.DelayedSubmission(self, *self._requeue_args)

    def _start(self, params: JobParams, packed: int) -> subprocess.Popen:
        import cloudpickle

        self.pack_dir.mkdir(parents=True, exist_ok=True)
        call = self.pack_dir / f"{params[2]}.call.pkl"
        call.write_bytes(cloudpickle.dumps((self.shared, params)))
        self._out(params[2]).unlink(missing_ok=True)
        return subprocess.Popen([sys.executable, "-m", __name__, str(call), str(self._out(params[2]))],
                                env={**os.environ, PACKED_JOBS_ENV: str(packed)})

    def _out(self, number: int) -> Path:
        return self.pack_dir / f"{number}.return.pkl"

    def _result(self, number: int, returncode: int) -> JobReturn | None:
        """The child's JobReturn; None when it stopped to be requeued; a failed one when it died without one."""
        import cloudpickle

        out = self._out(number)
        if out.is_file():
            return cloudpickle.loads(out.read_bytes())
        if returncode in (EX_TEMPFAIL, -preemption_signal()):  # checkpointed for the requeue
            return None
        failed = JobReturn()
        failed.status = JobStatus.FAILED
        failed._return_value = RuntimeError(f"packed job {number} ended with exit code {returncode} and no result")
        return failed


def main(call: str, out: str) -> None:
    """A child: run the launcher's call for one job, pickle its JobReturn. A preempted job exits 75 before."""
    import cloudpickle

    shared, params = cloudpickle.loads(Path(call).read_bytes())
    Path(out).write_bytes(cloudpickle.dumps(run_job(shared, params)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
