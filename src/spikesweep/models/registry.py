"""One registry of model constructors; each model file registers its sizes on import.

A constructor receives the `model` config (minus `name`), the neuron factory, and the dataset's meta,
so class counts and input shapes can only come from the dataset.
"""

import importlib
import pkgutil
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

ModelBuilder = Callable[..., nn.Module]
_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def wrap(fn: ModelBuilder) -> ModelBuilder:
        _BUILDERS[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    """Import every module of the package once: a new file registers itself, no list to edit."""
    package = importlib.import_module("spikesweep.models")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"spikesweep.models.{info.name}")


def _load(name: str) -> None:
    """Import only the module that registers `name` literally (startup stays fast), else all of them."""
    if name in _BUILDERS:
        return
    pattern = f'register_model("{name}")'
    for path in Path(__file__).parent.glob("*.py"):
        if pattern in path.read_text():
            importlib.import_module(f"spikesweep.models.{path.stem}")
            return
    _load_all()


def model_names() -> list[str]:
    _load_all()
    return sorted(_BUILDERS)


def build_model(cfg: Mapping[str, Any], neuron: Callable[..., nn.Module], meta: Any) -> nn.Module:
    """Build the model described by a `model` config node for the dataset described by `meta`."""
    params = dict(cfg)
    name = params.pop("name")
    _load(name)
    if name not in _BUILDERS:
        raise ValueError(f"unknown model '{name}'; valid: {', '.join(model_names())}")
    try:
        return _BUILDERS[name](neuron=neuron, meta=meta, **params)
    except TypeError as err:
        raise ValueError(f"model '{name}': bad parameters {sorted(params)} ({err})") from err
