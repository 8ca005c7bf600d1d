"""What every subcommand shares: the one user-error type, composing a checked config, running Hydra."""

import sys

from spikesweep import REPO_ROOT


class UserError(Exception):
    """A problem the user can fix (a bad argument, config or file): `main` prints it as one line, exit 2."""


def checked(overrides: list[str]) -> None:
    """Refuse overrides that name no config group, key or option, in one line (before Hydra's traceback)."""
    from spikesweep.override_check import check

    problem = check(overrides)
    if problem:
        raise UserError(problem)


def composed(overrides: list[str], validated: bool = True):
    """The config `spikesweep train` would run with these overrides, without starting a run."""
    from hydra.errors import HydraException

    from spikesweep.compose import compose_config
    from spikesweep.config_schema import ConfigError, validate

    try:
        cfg = compose_config(overrides)
        if validated:
            validate(cfg)
    except (HydraException, ConfigError) as err:
        raise UserError(str(err).splitlines()[0]) from None
    return cfg


def run_hydra(args: list[str]) -> int:
    """Run the Hydra task with our config dir and the repo root (for experiments/) on the search path."""
    from spikesweep.jobs import hydra_main
    from spikesweep.sweeps.callback import LAST_SWEEP

    LAST_SWEEP.clear()
    sys.argv = ["spikesweep", "--config-dir", str(REPO_ROOT), *args]
    hydra_main()
    return 1 if LAST_SWEEP.get("failed") else 0
