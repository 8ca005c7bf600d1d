"""submitit's SLURM launcher, with the ways a sweep fails before any job runs said in one line.

Without SLURM's client commands submitit raises `Could not detect "srun"`, and when sbatch cannot reach the
controller it raises FailedJobError with sbatch's output; Hydra prints either as a traceback. SystemExit
passes through Hydra's error report untouched, so the user sees one line and a non-zero exit.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf

#: SLURM states of a job that has not started: what --max-failures cancels.
NOT_STARTED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING")


class SlurmLauncher(SubmititSlurmLauncher):
    #: The sweeper leaves --max-failures to this launcher (one array, queued jobs cancelled) instead of
    #: launching one job at a time.
    handles_max_failures = True

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
        if missing:
            raise SystemExit(
                f"error: hydra/launcher=slurm: no {' or '.join(missing)} on PATH, so no SLURM cluster to submit to; "
                f"run on the cluster's login node, or drop hydra/launcher=slurm to run the jobs here"
            )
        assert self.config is not None
        sweeper = self.config.hydra.sweeper
        try:
            jobs = self._submit(job_overrides, initial_job_idx)
            if sweeper.get("detach"):
                return self._detach(jobs)
            if sweeper.get("max_failures"):
                self._cancel_after_failures(jobs, int(sweeper.max_failures))
            return [self._result(job) for job in jobs]
        except FailedJobError as err:
            if str(err).startswith("Job (task="):  # a job that ran and failed: not a submission problem
                raise
            lines = [line for line in str(err).splitlines() if line.strip()] or ["no output"]
            raise SystemExit(f"error: hydra/launcher=slurm: sbatch refused the sweep: {lines[-1].strip()}") from None

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """hydra-submitit-launcher's launch up to the submission of the array (its code), without waiting."""
        import submitit

        assert self.config is not None
        params = self.params
        init_params = {"folder": params["submitit_folder"], f"{self._EXECUTOR}_max_num_timeout": params["max_num_timeout"]}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            x if x in baseparams else f"{self._EXECUTOR}_{x}": y
            for x, y in params.items() if x not in {"max_num_timeout", "submitit_folder"}
        })
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        job_params = [(list(overrides), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                       Singleton.get_state()) for i, overrides in enumerate(job_overrides)]
        return executor.map_array(self, *zip(*job_params))

    @staticmethod
    def _result(job: Any) -> JobReturn:
        if getattr(job, "_not_launched", False):
            ret = JobReturn()
            ret.status, ret._return_value = JobStatus.COMPLETED, "not launched"
            return ret
        return job.results()[0]

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
        array = jobs[0].job_id.split("_")[0]
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
        for _ in jobs:
            ret = JobReturn()
            ret.status, ret._return_value = JobStatus.COMPLETED, "detached"
            rets.append(ret)
        print(f"detached: array {array} ({len(jobs)} jobs), summary job {out.stdout.strip().split(';')[0]}; "
              f"see it with `spikesweep status {sweep_dir}`", flush=True)
        return rets
