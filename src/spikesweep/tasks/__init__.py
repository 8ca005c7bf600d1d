"""Tasks by name (the `task` config group): each owns its targets, loss, metrics and best-epoch metric.

A new task is one module here with a `build_<name>(meta, trainer, **params)` function, its line in
`_MODULES`, and `conf/task/<name>.yaml`; the engine does not change.
"""

import importlib
from collections.abc import Mapping
from typing import Any

from spikesweep.protocols import Task

#: task name -> (module, builder): a lookup imports only its own module
_MODULES = {"classification": ("spikesweep.tasks.classification", "build_classification")}


def task_names() -> list[str]:
    return sorted(_MODULES)


def build_task(cfg: Mapping[str, Any], meta: Any, trainer: Mapping[str, Any]) -> Task:
    params = dict(cfg)
    name = params.pop("name")
    if name not in _MODULES:
        raise ValueError(f"unknown task '{name}'; valid: {', '.join(task_names())}")
    module, builder = _MODULES[name]
    return getattr(importlib.import_module(module), builder)(meta, trainer, **params)
