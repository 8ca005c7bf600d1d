"""`spikesweep report` and `spikesweep compare`: tables and plots from run directories (or W&B)."""

import argparse
import sys
from pathlib import Path

from spikesweep.cli.common import UserError


def cmd_compare(args: list[str]) -> int:
    from spikesweep.sweeps.compare import compare

    if len(args) != 1:
        raise UserError("usage: spikesweep compare DIR")
    table, _ = compare(Path(args[0]))  # a missing directory: FileNotFoundError, one line from main
    print(table)
    print(f"\nCSV: {Path(args[0]) / 'compare.csv'}")
    return 0


def cmd_report(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue
    from spikesweep.sweeps.report import newest_sweep_dir, report

    parser = argparse.ArgumentParser(prog="spikesweep report")
    parser.add_argument("name", help="a named multirun (experiments/NAME.yaml)")
    parser.add_argument("--dir", type=Path, help="the multirun directory (default: the newest multirun/NAME/*)")
    parser.add_argument("--wandb", action="store_true", help="save a W&B report of the multirun's wandb group")
    parser.add_argument("--entity", help="W&B entity (default: logger.entity, else your default entity)")
    parser.add_argument("--project", help="W&B project (default: logger.project)")
    opts = parser.parse_args(args)
    if (opts.entity or opts.project) and not opts.wandb or opts.dir and opts.wandb:
        raise UserError("--entity and --project go with --wandb, which reads the runs from W&B, not --dir")
    try:
        sweep = catalogue.load(opts.name)
        if opts.wandb:
            return _report_wandb(sweep, opts.entity, opts.project)
        markdown, out = report(opts.dir or newest_sweep_dir(Path.cwd(), opts.name), sweep.reported)
    except KeyError as err:  # an unknown sweep name
        raise UserError(err.args[0]) from None
    print(markdown)
    print(f"\nreport: {out}")
    return 0


def _report_wandb(sweep, entity: str | None, project: str | None) -> int:
    """The W&B report is built from the catalogue and the runs in W&B; no local run directory is needed."""
    import os

    from spikesweep.sweeps.wandb_report import ReportNotSaved, save

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's own log lines would bury the one-line error
    try:
        url = save(sweep, entity, project)
    except ReportNotSaved as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"W&B report: {url}")
    return 0

