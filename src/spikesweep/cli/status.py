"""`spikesweep status`: where a sweep stands, from its run directories' small files (no torch, no Hydra)."""

import argparse
import sys
from pathlib import Path


def cmd_status(args: list[str]) -> int:
    from spikesweep.sweeps import status, sweep_record

    parser = argparse.ArgumentParser(prog="spikesweep status")
    parser.add_argument("sweep", help="a sweep directory, or a named multirun (its newest directory)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--watch", nargs="?", type=float, const=10.0, metavar="SECONDS",
                        help="redraw every SECONDS (default 10) until no job is queued or running")
    parser.add_argument("--no-slurm", action="store_true", help="do not ask squeue/sacct")
    opts = parser.parse_args(args)
    sweep_dir = sweep_record.locate(opts.sweep, Path.cwd())  # not found: FileNotFoundError, one line
    if opts.watch:
        try:
            status.watch(sweep_dir, opts.watch, sys.stdout, not opts.no_slurm)
        except KeyboardInterrupt:
            pass
        return 0
    rows = status.collect(sweep_dir, not opts.no_slurm)
    print(status.as_json(sweep_dir, rows) if opts.json else status.table(sweep_dir, rows))
    return 0
