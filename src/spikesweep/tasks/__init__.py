"""Tasks by name (the `task` config group): each owns its targets, loss, metrics and best-epoch metric.

A new task is one module here registering `build_<name>(meta, trainer, **params)` with `@TASKS.register`,
plus `conf/task/<name>.yaml`; the engine does not change.
"""

from collections.abc import Mapping
from typing import Any

from spikesweep.protocols import Task
from spikesweep.registry import Registry

TASKS = Registry("task", "spikesweep.tasks")


def task_names() -> list[str]:
    return TASKS.names()


def build_task(cfg: Mapping[str, Any], meta: Any, trainer: Mapping[str, Any]) -> Task:
    params = dict(cfg)
    name = params.pop("name")
    return TASKS.get(name)(meta, trainer, **params)
