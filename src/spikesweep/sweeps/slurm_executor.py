"""One way to queue work on SLURM: a submitit executor from the `hydra/launcher=slurm` settings
(conf/hydra/launcher/slurm.yaml plus a `+cluster=` profile), used by the sweep launcher's job arrays and by a
search's worker arrays, so that a cluster profile means the same for both."""

import shutil
from collections.abc import Mapping
from typing import Any

#: Settings that are not submitit's per-job parameters: the executor's own, and the launcher's job packing.
_NOT_JOB_PARAMETERS = {"max_num_timeout", "submitit_folder", "jobs_per_task"}


def require_slurm_clients(what: str) -> None:
    """One line instead of submitit's `Could not detect "srun"` traceback when there is no cluster to submit to."""
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise SystemExit(
            f"error: {what}: no {' or '.join(missing)} on PATH, so no SLURM cluster to submit to; "
            f"run on the cluster's login node, or drop hydra/launcher=slurm to run the jobs here"
        )


def slurm_executor(params: Mapping[str, Any], folder: str):
    """A submitit SLURM executor whose jobs get `params` (the launcher config's keys: submitit's own queue keys
    as they are, the rest as slurm_<key>), logging under `folder` (submitit's %j/%A/%a placeholders)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    executor = submitit.AutoExecutor(cluster="slurm", folder=folder, slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"slurm_{key}": value
                                  for key, value in params.items() if key not in _NOT_JOB_PARAMETERS})
    return executor
