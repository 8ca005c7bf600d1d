"""submitit's SLURM launcher, with the ways a sweep fails before any job runs said in one line.

Without SLURM's client commands submitit raises `Could not detect "srun"`, and when sbatch cannot reach the
controller it raises FailedJobError with sbatch's output; Hydra prints either as a traceback. SystemExit
passes through Hydra's error report untouched, so the user sees one line and a non-zero exit.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from hydra_plugins.spikesweep_launcher.array_tasks import PackedJobs, SweepJob, save_launcher

from spikesweep.sweeps.slurm_executor import require_slurm_clients, slurm_executor
from spikesweep.sweeps.sweep_record import note_tasks

#: SLURM states of a job that has not started: what --max-failures cancels.
NOT_STARTED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING")


@dataclass
class SpikesweepSlurmConf(SlurmQueueConf):
    """submitit's SLURM settings, plus job packing: K jobs of the sweep per array task (array_tasks.py)."""

    _target_: str = "hydra_plugins.spikesweep_launcher.slurm_launcher.SlurmLauncher"
    jobs_per_task: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="spikesweep_slurm", node=SpikesweepSlurmConf,
                             provider="spikesweep")


class SlurmLauncher(SubmititSlurmLauncher):
    #: The sweeper leaves --max-failures to this launcher (one array, queued jobs cancelled) instead of
    #: launching one job at a time.
    handles_max_failures = True

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        require_slurm_clients("hydra/launcher=slurm")
        assert self.config is not None
        sweeper = self.config.hydra.sweeper
        try:
            jobs = self._submit(job_overrides, initial_job_idx)
            if sweeper.get("detach"):
                return self._detach(jobs)
            if sweeper.get("max_failures"):
                self._cancel_after_failures(jobs, int(sweeper.max_failures))
            return [result for job in jobs for result in self._results(job)]
        except FailedJobError as err:
            if str(err).startswith("Job (task="):  # a job that ran and failed: not a submission problem
                raise
            lines = [line for line in str(err).splitlines() if line.strip()] or ["no output"]
            raise SystemExit(f"error: hydra/launcher=slurm: sbatch refused the sweep: {lines[-1].strip()}") from None

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """hydra-submitit-launcher's launch up to the submission, without waiting: one array task per job, or
        per K jobs (jobs_per_task), in as many arrays as MaxArraySize needs; which task runs which job is
        recorded for `status` (.submitit/tasks.json)."""
        assert self.config is not None
        executor = slurm_executor(self.params, self.params["submitit_folder"])
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_params = [(list(overrides), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}")
                      for i, overrides in enumerate(job_overrides)]
        if self.jobs_per_task > 1 and (int(self.params["tasks_per_node"]) > 1 or int(self.params["nodes"]) > 1):
            raise SystemExit("error: hydra.launcher.jobs_per_task packs single-process jobs into one task; it cannot "
                             "be combined with multi-task (DDP) jobs: set tasks_per_node=1 and nodes=1")
        packs = [job_params[i:i + self.jobs_per_task] for i in range(0, len(job_params), self.jobs_per_task)]
        self.jobs_in_pack = [len(pack) for pack in packs]
        limit = max_array_size()
        shared = save_launcher(self, sweep_dir / ".submitit")
        jobs = []
        for first in range(0, len(packs), limit):  # SLURM refuses an array of more than MaxArraySize tasks
            chunk = packs[first:first + limit]
            if self.jobs_per_task == 1:
                jobs += executor.map_array(SweepJob(shared), *zip(*(pack[0] for pack in chunk)))
            else:
                jobs += executor.map_array(PackedJobs(shared, sweep_dir / ".submitit" / "packed"), chunk)
        self.task_index = {job.job_id: index for index, job in enumerate(jobs)}
        note_tasks(sweep_dir, {params[2]: job.job_id for job, pack in zip(jobs, packs) for params in pack})
        return jobs

    @property
    def jobs_per_task(self) -> int:
        value = self.params.get("jobs_per_task", 1)
        if not isinstance(value, int) or value < 1:
            raise SystemExit(f"error: hydra.launcher.jobs_per_task={value!r} must be an integer >= 1")
        return value

    def _results(self, job: Any) -> list[JobReturn]:
        """The JobReturns of one array task: one job's, or a packed task's jobs'."""
        if getattr(job, "_not_launched", False):
            ret = JobReturn()
            ret.status, ret._return_value = JobStatus.COMPLETED, "not launched"
            return [ret] * self.jobs_in_pack[self.task_index[job.job_id]]
        return job.results()[0] if self.jobs_per_task > 1 else [job.results()[0]]


    def _cancel_after_failures(self, jobs: list[Any], max_failures: int) -> None:
        """Poll the jobs' run directories; at max_failures failed jobs cancel those not started yet."""
        from spikesweep.sweeps import status

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        while not all(job.done() for job in jobs):
            failed = sum(r["state"] == "failed" for r in status.collect(sweep_dir, use_slurm=False)
                         if (sweep_dir / str(r["job"])).is_dir())
            if failed >= max_failures:
                for job in jobs:
                    if job.state in NOT_STARTED:
                        job.cancel(check=False)
                        job._not_launched = True
                return
            time.sleep(2)

    def _detach(self, jobs: list[Any]) -> list[JobReturn]:
        """Return at once; a job that starts when every job of the array has ended (afterany) writes the
        sweep summary (compare.csv, summary.md) and, for a named multirun, its report."""
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        arrays = list(dict.fromkeys(job.job_id.split("_")[0] for job in jobs))
        array = ":".join(arrays)
        cli = f"{shlex.quote(sys.executable)} -m spikesweep.cli"
        wrap = (f"cd {shlex.quote(os.getcwd())} && {cli} compare {shlex.quote(str(sweep_dir))} > "
                f"{shlex.quote(str(sweep_dir / 'summary.md'))}; {cli} report {shlex.quote(str(sweep_dir))} || true")
        out = subprocess.run(["sbatch", "--parsable", f"--dependency=afterany:{array}", "-J", "sweep-summary",
                              "-c", "1", "-t", "10", "-o", str(sweep_dir / ".submitit" / "summary-%j.out"),
                              "--wrap", wrap], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"error: the sweep {sweep_dir} is queued (array {array}) but its summary job was "
                             f"refused: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no output'}")
        rets = []
        for _ in range(sum(self.jobs_in_pack)):
            ret = JobReturn()
            ret.status, ret._return_value = JobStatus.COMPLETED, "detached"
            rets.append(ret)
        print(f"detached: array {', '.join(arrays)} ({len(rets)} jobs in {len(jobs)} tasks), summary job "
              f"{out.stdout.strip().split(';')[0]}; see it with `spikesweep status {sweep_dir}`", flush=True)
        return rets


def max_array_size() -> int:
    """The cluster's MaxArraySize (tasks per array; SLURM's default 1001)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 1001
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found.group(1)) if found else 1001
