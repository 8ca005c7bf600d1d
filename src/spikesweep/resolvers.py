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


def user_cache() -> str:
    """The per-user cache (spiking/backends/user_cache.py): compiled loops and data caches are shared by every
    clone and every job of a sweep on the machine."""
    from spikesweep.spiking.backends.user_cache import user_cache_dir

    return str(user_cache_dir())


def register() -> None:
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)
    if not OmegaConf.has_resolver("user_cache"):
        OmegaConf.register_new_resolver("user_cache", user_cache)
