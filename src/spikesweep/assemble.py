"""The one place a composed config becomes the objects of a run: data and its meta, the neuron factory, the
model, the training method and the task.

Training, evaluation, `info`, `verify-spikes`, `import-ckpt`, the benchmarks and the tests all come
through `assemble`, so a run is built one way everywhere. The dataset's meta comes from its config,
which the dataset builders check against the files: commands that need only shapes (`info`, `bench model`,
`import-ckpt`) read no data.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from spikesweep.data import DataBundle, DatasetMeta, build_datasets, meta_from_config
from spikesweep.methods import build_method
from spikesweep.models import build_model
from spikesweep.protocols import Task, TrainingMethod
from spikesweep.spiking import NeuronFactory, build_neuron, build_surrogate
from spikesweep.tasks import build_task


def task_config(cfg: DictConfig) -> Mapping[str, Any]:
    """The `task` group; configs saved before tasks were a group (checkpoints, imported weights) classify."""
    task = cfg.get("task")
    return task if isinstance(task, Mapping | DictConfig) else {"name": "classification"}


@dataclass
class Assembly:
    meta: DatasetMeta
    neuron: NeuronFactory
    model: nn.Module
    method: TrainingMethod | None
    task: Task
    data: DataBundle | None  # None when assembled without data


def assemble(
    cfg: DictConfig | Mapping[str, Any], device: torch.device | str | None = None, *, with_data: bool = True,
    eager: bool = False,
) -> Assembly:
    """Build everything a run needs from `cfg` (a composed config, or the plain dict a checkpoint stores).

    `device` lets `neuron.backend: auto` choose for where the model will run. `with_data=False` reads no
    dataset files. `eager` resolves `backend: auto` to the eager torch loop: for commands that run a model
    a few times on odd shapes, where compiling costs more than the work (info on CPU: 84 s compiled, 8 s eager).
    """
    cfg = OmegaConf.create(cfg) if not isinstance(cfg, DictConfig) else cfg
    data = build_datasets(cfg.dataset, cfg.paths.data_dir) if with_data else None
    meta = data.meta if data is not None else meta_from_config(cfg.dataset)
    neuron_cfg = dict(cfg.neuron)
    if eager and neuron_cfg.get("backend") == "auto":
        neuron_cfg["backend"] = "torch"
    neuron = build_neuron(neuron_cfg, build_surrogate(cfg.surrogate), meta.time_steps, device)
    model = build_model(cfg.model, neuron, meta)
    method = build_method(cfg.get("method") or {"name": "bptt"}, cfg.model, neuron, meta)
    task = build_task(task_config(cfg), meta, cfg.trainer)
    return Assembly(meta=meta, neuron=neuron, model=model, method=method, task=task, data=data)
