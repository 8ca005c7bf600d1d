"""`spikesweep sweep NAME` and `spikesweep list`: the named multiruns of experiments/."""

import argparse
from pathlib import Path

from spikesweep.cli.common import UserError, checked, run_hydra


def cmd_sweep(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue, search

    searched = search.file_name(args[0]) if args and args[0] not in catalogue.names() else None
    if searched is not None:  # a hyperparameter search is a sweep too: `sweep digits --dry-run` shows its space
        from spikesweep.cli.search import cmd_search

        return cmd_search([searched, *args[1:]])
    parser = argparse.ArgumentParser(prog="spikesweep sweep")
    parser.add_argument("name")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    parser.add_argument("--resume", nargs="?", const="", metavar="SWEEP_DIR",
                        help="run again the jobs of a sweep that did not complete (default: its newest directory)")
    parser.add_argument("--rerun", choices=["failed", "all"], help="with --resume: only the failed jobs, or every job")
    parser.add_argument("--max-failures", type=int, metavar="N", help="stop launching jobs after N failed ones")
    parser.add_argument("--detach", action="store_true", help="hydra/launcher=slurm: submit the jobs and return")
    opts, overrides = parser.parse_known_args(args)
    extra = [f"hydra.sweeper.max_failures={opts.max_failures}"] if opts.max_failures else []
    extra += ["hydra.sweeper.detach=true"] if opts.detach else []
    if opts.resume is not None:
        return _resume(opts.name, opts.resume, opts.rerun or "unfinished", overrides, extra)
    if opts.rerun:
        raise UserError("--rerun goes with --resume")
    try:
        sweep = catalogue.load(opts.name)
        for o in overrides:  # an axis given on the command line: `key=a,b` (an empty value is a typo)
            key, _, value = o.partition("=")
            if "," in value or (not value and not key.startswith(("+", "~", "-"))):
                catalogue.split_values(value, key)
    except KeyError as err:  # an unknown sweep name
        raise UserError(f"{err.args[0]}; hyperparameter searches: {', '.join(search.names())}") from None
    checked(["-m", f"+experiments={sweep.name}", *overrides])
    if opts.dry_run:
        return _dry_run(sweep, overrides)
    return run_hydra(["-m", f"+experiments={sweep.name}", *overrides, *extra])


def _resume(name: str, where: str, rerun: str, overrides: list[str], extra: list[str]) -> int:
    """Plan from the sweep's small files first: with nothing to run, neither Hydra nor torch is imported.
    A changed axis or fixed override is a ValueError (SweepChanged) with the one-line diff."""
    from spikesweep.sweeps import catalogue, resume, sweep_record

    try:
        sweep = catalogue.load(name)
    except KeyError as err:  # an unknown sweep name
        raise UserError(err.args[0]) from None
    sweep_dir = Path(where) if where else sweep_record.newest(Path.cwd(), name)
    plan = resume.plan(sweep_dir, rerun)
    given = resume.arguments(name, plan, sweep.params, overrides)
    print(plan.line())
    print(f"status: spikesweep status {sweep_dir}")
    if not plan.run:
        return 0
    return run_hydra([*resume.hydra_arguments(plan, given), *extra])


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
    from spikesweep.sweeps import search

    for name in search.names():
        spec = search.load(name)
        print(f"search {name:21s} {spec['n_trials']:4d} trials  {spec.get('description', '')}")
    return 0

