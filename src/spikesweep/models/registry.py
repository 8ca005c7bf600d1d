"""The model registry (spikesweep.registry); each model file registers its sizes on import.

A constructor receives the `model` config (minus `name`), the neuron factory, and the dataset's meta,
so class counts and input shapes can only come from the dataset.
"""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from spikesweep.registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS = Registry("model", "spikesweep.models")
register_model = MODELS.register  # `@register_model("name")` in a model file


def model_names() -> list[str]:
    return MODELS.names()


def build_model(cfg: Mapping[str, Any], neuron: Callable[..., nn.Module], meta: Any) -> nn.Module:
    """Build the model described by a `model` config node for the dataset described by `meta`."""
    params = dict(cfg)
    name = params.pop("name")
    builder = MODELS.get(name)
    try:
        return builder(neuron=neuron, meta=meta, **params)
    except TypeError as err:
        raise ValueError(f"model '{name}': bad parameters {sorted(params)} ({err})") from err
