"""Experiment tracking behind one small interface: metrics.jsonl always, wandb when configured."""

from spikesweep.tracking.base import NullTracker, Tracker, TrackerGroup
from spikesweep.tracking.jsonl import JsonlTracker

__all__ = ["JsonlTracker", "NullTracker", "Tracker", "TrackerGroup"]
