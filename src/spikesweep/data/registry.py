"""The dataset registry (spikesweep.registry); each dataset file registers itself on import.

A builder receives its config node (without `name`) and the data root, and returns a DataBundle whose
meta is the single source of truth for num_classes, input shape and time steps: models read them from
here, never from a hand-typed flag. The config states num_classes and input_shape too, and both are
checked against what the data really holds, so a config that disagrees with its data fails before training.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch.utils.data import Dataset

from spikesweep.registry import Registry


class DataError(ValueError):
    """A user-fixable problem with the data on disk (missing, corrupt, mislaid): one line naming the path."""


@dataclass(frozen=True)
class DatasetMeta:
    num_classes: int
    input_shape: tuple[int, ...]  # per time step: (C, H, W) for images, (F,) for sequences
    time_steps: int  # T the model runs for: repeats of a static input, or frames of an event stream
    temporal: bool  # True when samples already carry a time axis ([T, ...] per sample)
    mean: tuple[float, ...] | None = None  # per-channel normalisation applied by the dataset, if any
    std: tuple[float, ...] | None = None
    source: str = ""  # the folder samples are read from (data root or frame cache), for logs and `prepare`


@dataclass(frozen=True)
class DataBundle:
    train: Dataset
    test: Dataset
    meta: DatasetMeta


DatasetBuilder = Callable[..., DataBundle]
DATASETS = Registry("dataset", "spikesweep.data")
register_dataset = DATASETS.register  # `@register_dataset("name")` in a dataset file


def dataset_names() -> list[str]:
    return DATASETS.names()


def build_datasets(cfg: Mapping[str, Any], data_dir: str | Path) -> DataBundle:
    """Build train/test datasets from a `dataset` config node ({name, T, **options})."""
    params = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    name = params.pop("name")
    builder = DATASETS.get(name)
    stated_shape = params.pop("input_shape", None)
    stated_temporal = params.pop("temporal", None)
    try:
        bundle = builder(data_dir=Path(data_dir), **params)
    except TypeError as err:
        if "argument" not in str(err):
            raise
        raise ValueError(f"dataset '{name}': bad parameters {sorted(params)} ({err})") from err
    if "num_classes" in params and bundle.meta.num_classes != params["num_classes"]:
        raise DataError(
            f"dataset.num_classes={params['num_classes']} but the {name} data has {bundle.meta.num_classes} classes"
        )
    if stated_shape is not None and tuple(stated_shape) != tuple(bundle.meta.input_shape):
        raise DataError(
            f"dataset.input_shape={list(stated_shape)} but {name} yields {list(bundle.meta.input_shape)} per time step"
        )
    if stated_temporal is not None and bool(stated_temporal) != bundle.meta.temporal:
        raise DataError(f"dataset.temporal={stated_temporal} but {name} yields "
                        f"{'samples with' if bundle.meta.temporal else 'static samples without'} a time axis")
    return bundle


def meta_from_config(cfg: Mapping[str, Any]) -> DatasetMeta:
    """The dataset's meta from its config alone (no files read): what a model's shapes depend on. The
    builders check that the data on disk agrees with it, so both always match."""
    return DatasetMeta(num_classes=int(cfg["num_classes"]), input_shape=tuple(int(d) for d in cfg["input_shape"]),
                       time_steps=int(cfg["T"]), temporal=bool(cfg["temporal"]))
