"""`spikesweep report` and `spikesweep compare`: tables and plots from run directories (or W&B)."""

import argparse
import sys
from pathlib import Path

from spikesweep.cli.common import UserError


def cmd_compare(args: list[str]) -> int:
    from spikesweep.sweeps.compare import compare
    from spikesweep.sweeps.sweep_record import locate

    if len(args) != 1:
        raise UserError("usage: spikesweep compare DIR|NAME")
    root = locate(args[0], Path.cwd())  # neither a directory nor a sweep name: FileNotFoundError, one line
    table, _ = compare(root)
    print(table)
    print(f"\nCSV: {root / 'compare.csv'}")
    return 0


def cmd_report(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue, sweep_record
    from spikesweep.sweeps.report import report

    parser = argparse.ArgumentParser(prog="spikesweep report")
    parser.add_argument("name", help="a named multirun (experiments/NAME.yaml), or a sweep directory (its sweep.json names it)")
    parser.add_argument("--dir", type=Path, help="the multirun directory (default: the newest multirun/NAME/*)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a cell is below its reported number's tolerance")
    parser.add_argument("--wandb", action="store_true", help="save a W&B report of the multirun's wandb group")
    parser.add_argument("--entity", help="W&B entity (default: logger.entity, else your default entity)")
    parser.add_argument("--project", help="W&B project (default: logger.project)")
    opts = parser.parse_args(args)
    if (opts.entity or opts.project) and not opts.wandb or opts.dir and opts.wandb:
        raise UserError("--entity and --project go with --wandb, which reads the runs from W&B, not --dir")
    name, sweep_dir = opts.name, opts.dir
    if Path(opts.name).is_dir() and (Path(opts.name) / "search.json").is_file():  # an Optuna search
        from spikesweep.sweeps import search

        print(search.report(Path(opts.name)))
        return 0
    if Path(opts.name).is_dir():  # `report DIR`: the name from its sweep.json
        sweep_dir, record = Path(opts.name), sweep_record.read(Path(opts.name))
        if record is None:
            raise UserError(f"no {sweep_record.FILE} in {sweep_dir}: give the name, `report NAME --dir {sweep_dir}`")
        name = record["name"]
    try:
        sweep = catalogue.load(name)
    except KeyError as err:  # an unknown sweep name
        raise UserError(err.args[0]) from None
    if opts.wandb:
        return _report_wandb(sweep, opts.entity, opts.project)
    markdown, out, cells = report(sweep_dir or sweep_record.newest(Path.cwd(), name), sweep.reported, sweep.tolerance)
    print(markdown)
    print(f"\nreport: {out}")
    below = [c["cell"] for c in cells if c.get("verdict") == "below"]
    if opts.check and below:
        print(f"error: {len(below)} cell(s) below the reported number: {'; '.join(below)}", file=sys.stderr)
        return 1
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

