"""`spikesweep` command line. Heavy modules (torch, hydra) are imported inside the subcommands that need
them, so `spikesweep list` answers instantly."""

import argparse
import sys
from pathlib import Path

from spikesweep import REPO_ROOT

USAGE = """spikesweep <command> [args]

commands:
  train [overrides...]                one run, e.g. `spikesweep train model=small_cnn surrogate=sigmoid`
  sweep NAME [overrides...] [--dry-run]   the named multirun experiments/NAME.yaml
  list                                the named multiruns
  compare DIR                         table of every run under DIR (markdown; CSV written beside)
"""


def _hydra(args: list[str]) -> int:
    """Run the Hydra task with our config dir and the repo root (for experiments/) on the search path."""
    from spikesweep.run import hydra_main
    from spikesweep.sweeps.callback import LAST_SWEEP

    LAST_SWEEP.clear()
    sys.argv = ["spikesweep", "--config-dir", str(REPO_ROOT), *args]
    hydra_main()
    return 1 if LAST_SWEEP.get("failed") else 0


def cmd_train(args: list[str]) -> int:
    from spikesweep.override_check import check

    problem = check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return _hydra(args)


def cmd_sweep(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue

    parser = argparse.ArgumentParser(prog="spikesweep sweep")
    parser.add_argument("name")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    opts, overrides = parser.parse_known_args(args)
    try:
        sweep = catalogue.load(opts.name)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    from spikesweep.override_check import check

    problem = check([f"+experiments={sweep.name}", *overrides])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if opts.dry_run:
        return _dry_run(sweep, overrides)
    return _hydra(["-m", f"+experiments={sweep.name}", *overrides])


def _dry_run(sweep, overrides: list[str]) -> int:
    """Expand the sweep as Hydra's basic sweeper would, composing every job to catch config errors."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from spikesweep.compose import compose_config
    from spikesweep.config_schema import validate

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
        validate(compose_config([f"+experiments={sweep.name}", *fixed, *job]))
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


def cmd_compare(args: list[str]) -> int:
    from spikesweep.sweeps.compare import compare

    if len(args) != 1:
        print("usage: spikesweep compare DIR", file=sys.stderr)
        return 2
    try:
        table, _ = compare(Path(args[0]))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"\nCSV: {Path(args[0]) / 'compare.csv'}")
    return 0


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "list": cmd_list, "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; valid: {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
