"""`spikesweep sweep NAME` and `spikesweep list`: the named multiruns of experiments/."""

import argparse

from spikesweep.cli.common import UserError, checked, run_hydra


def cmd_sweep(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue

    parser = argparse.ArgumentParser(prog="spikesweep sweep")
    parser.add_argument("name")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    opts, overrides = parser.parse_known_args(args)
    try:
        sweep = catalogue.load(opts.name)
        for o in overrides:  # an axis given on the command line: `key=a,b` (an empty value is a typo)
            key, _, value = o.partition("=")
            if "," in value or (not value and not key.startswith(("+", "~", "-"))):
                catalogue.split_values(value, key)
    except KeyError as err:  # an unknown sweep name
        raise UserError(err.args[0]) from None
    checked(["-m", f"+experiments={sweep.name}", *overrides])
    if opts.dry_run:
        return _dry_run(sweep, overrides)
    return run_hydra(["-m", f"+experiments={sweep.name}", *overrides])


def _dry_run(sweep, overrides: list[str]) -> int:
    """Expand the sweep as Hydra's basic sweeper would, composing every job to catch config errors."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from spikesweep.compose import compose_config
    from spikesweep.config_schema import ConfigError, validate

    params = {**sweep.params}
    fixed = []
    for o in overrides:
        key, _, value = o.partition("=")
        if "," in value:
            params[key] = value
        else:
            fixed.append(o)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    jobs = BasicSweeper.split_arguments(parsed, None)[0]
    for i, job in enumerate(jobs):
        try:
            validate(compose_config([f"+experiments={sweep.name}", *fixed, *job]))
        except (HydraException, ConfigError) as err:
            raise UserError(f"job {i} ({' '.join(job)}): {str(err).splitlines()[0]}") from None
        print(f"{i:4d}  {' '.join(job)}")
    launcher = compose_config([f"+experiments={sweep.name}", *fixed, *jobs[0]], hydra_config=True).hydra.launcher
    gpus = (launcher.get("gpus_per_node") or 0) * (launcher.get("nodes") or 1)
    estimate = ""
    if "timeout_min" in launcher:  # an upper bound: every job using its whole time limit
        estimate = f", at most {len(jobs) * gpus * launcher.timeout_min / 60:.1f} GPU-hours ({gpus} GPU(s) x {launcher.timeout_min} min per job)"
    print(f"{len(jobs)} jobs in '{sweep.name}'{estimate}")
    return 0



def cmd_list(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue

    del args
    for name in catalogue.names():
        sweep = catalogue.load(name)
        paper = f" [{sweep.paper}]" if sweep.paper else ""
        print(f"{name:28s} {sweep.job_count:4d} jobs  {sweep.description}{paper}")
    return 0

