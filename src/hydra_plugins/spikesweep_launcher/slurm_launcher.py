"""submitit's SLURM launcher, with the ways a sweep fails before any job runs said in one line.

Without SLURM's client commands submitit raises `Could not detect "srun"`, and when sbatch cannot reach the
controller it raises FailedJobError with sbatch's output; Hydra prints either as a traceback. SystemExit
passes through Hydra's error report untouched, so the user sees one line and a non-zero exit.
"""

import shutil
from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher


class SlurmLauncher(SubmititSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
        if missing:
            raise SystemExit(
                f"error: hydra/launcher=slurm: no {' or '.join(missing)} on PATH, so no SLURM cluster to submit to; "
                f"run on the cluster's login node, or drop hydra/launcher=slurm to run the jobs here"
            )
        try:
            return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as err:
            if str(err).startswith("Job (task="):  # a job that ran and failed: not a submission problem
                raise
            lines = [line for line in str(err).splitlines() if line.strip()] or ["no output"]
            raise SystemExit(f"error: hydra/launcher=slurm: sbatch refused the sweep: {lines[-1].strip()}") from None
