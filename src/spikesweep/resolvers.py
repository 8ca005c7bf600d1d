"""OmegaConf resolvers our configs use; registered on import of spikesweep.run and spikesweep.cli."""

import os
from datetime import datetime

from omegaconf import OmegaConf


def run_stamp() -> str:
    """A directory name unique per launch: time to the microsecond.

    Under torchrun every process composes its own config, so all ranks use the launch's shared id instead
    and agree on one directory.
    """
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if run_id != "none" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"torchrun-{run_id}"
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def register() -> None:
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)
