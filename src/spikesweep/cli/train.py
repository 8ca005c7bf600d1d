"""`spikesweep train`: one run (or an ad-hoc `-m` multirun) through Hydra."""

from spikesweep.cli.common import checked, run_hydra


def cmd_train(args: list[str]) -> int:
    checked(args)
    return run_hydra(args)

