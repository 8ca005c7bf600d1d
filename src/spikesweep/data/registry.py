"""One registry of dataset builders; each dataset file registers itself on import.

A builder receives its config node (without `name`) and the data root, and returns a DataBundle whose
meta is the single source of truth for num_classes, input shape and time steps: models read them from
here, never from a hand-typed flag.
"""

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset


@dataclass(frozen=True)
class DatasetMeta:
    num_classes: int
    input_shape: tuple[int, ...]  # per time step: (C, H, W) for images, (F,) for sequences
    time_steps: int  # T the model runs for: repeats of a static input, or frames of an event stream
    temporal: bool  # True when samples already carry a time axis ([T, ...] per sample)


@dataclass(frozen=True)
class DataBundle:
    train: Dataset
    test: Dataset
    meta: DatasetMeta


DatasetBuilder = Callable[..., DataBundle]
_BUILDERS: dict[str, DatasetBuilder] = {}


def register_dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    def wrap(fn: DatasetBuilder) -> DatasetBuilder:
        _BUILDERS[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    """Import every module of the package once: a new file registers itself, no list to edit."""
    package = importlib.import_module("spikesweep.data")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"spikesweep.data.{info.name}")


def dataset_names() -> list[str]:
    _load_all()
    return sorted(_BUILDERS)


def build_datasets(cfg: Mapping[str, Any], data_dir: str | Path) -> DataBundle:
    """Build train/test datasets from a `dataset` config node ({name, T, **options})."""
    _load_all()
    params = dict(cfg)
    name = params.pop("name")
    if name not in _BUILDERS:
        raise ValueError(f"unknown dataset '{name}'; valid: {', '.join(dataset_names())}")
    return _BUILDERS[name](data_dir=Path(data_dir), **params)
