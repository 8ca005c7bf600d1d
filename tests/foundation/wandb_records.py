"""Read wandb offline run files (run-<id>.wandb) back: what a later `wandb sync` would upload."""

import json
from pathlib import Path

from spikesweep.tracking.wandb_offline import history, read_records

__all__ = ["history", "read_records", "steps", "union_of_offline_runs"]


def steps(path: Path) -> list[int]:
    """The history steps of one offline run file, in the order logged."""
    return [int(json.loads(row["_step"])) for row in history(path)]


def union_of_offline_runs(run_dir: Path) -> list[dict[str, str]]:
    """The history rows of every offline run directory of a run, oldest first, concatenated."""
    return [row for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")) for row in history(path)]
