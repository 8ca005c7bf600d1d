"""The tracker interface, and a group that fans out to several trackers and isolates their failures."""

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log(self, metrics: dict[str, Any], step: int) -> None: ...

    def finish(self, status: str) -> None: ...


class NullTracker:
    """What ranks other than 0 log to: one writer per run directory."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        del metrics, step

    def finish(self, status: str) -> None:
        del status


class TrackerGroup:
    """Logs to every tracker; one that fails is reported once and dropped, training goes on.

    The first tracker (metrics.jsonl) is the record of truth and its failures propagate.
    """

    def __init__(self, primary: Tracker, *optional: Tracker) -> None:
        self.primary = primary
        self.optional = list(optional)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.primary.log(metrics, step)
        for tracker in list(self.optional):
            try:
                tracker.log(metrics, step)
            except Exception as err:  # a remote logger must never stop a training run
                log.error("tracker %s failed and is disabled for this run: %s", type(tracker).__name__, err)
                self.optional.remove(tracker)

    def finish(self, status: str) -> None:
        self.primary.finish(status)
        for tracker in self.optional:
            try:
                tracker.finish(status)
            except Exception as err:
                log.error("tracker %s failed while finishing: %s", type(tracker).__name__, err)
