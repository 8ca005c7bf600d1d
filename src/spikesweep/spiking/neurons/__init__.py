"""Neuron families by name: the `neuron` config group resolves here.

`build_neuron` returns a factory so a model can create one neuron per layer and still override a
per-layer setting (e.g. the attention neuron's threshold) without knowing the family.
"""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from spikesweep.spiking.neurons.lif import build_if, build_lif

NeuronFactory = Callable[..., nn.Module]

NEURONS: dict[str, Callable[..., nn.Module]] = {
    "if": build_if,
    "lif": build_lif,
}


def neuron_names() -> list[str]:
    return sorted(NEURONS)


def build_neuron(cfg: Mapping[str, Any], surrogate: Any) -> NeuronFactory:
    """Return `factory(**overrides) -> nn.Module` for the neuron described by `cfg` ({name, **params})."""
    params = dict(cfg)
    name = params.pop("name")
    if name not in NEURONS:
        raise ValueError(f"unknown neuron '{name}'; valid: {', '.join(neuron_names())}")
    builder = NEURONS[name]

    def factory(**overrides: Any) -> nn.Module:
        try:
            return builder(surrogate=surrogate, **{**params, **overrides})
        except TypeError as err:
            raise ValueError(f"neuron '{name}': bad parameters ({err})") from err

    factory(**{})  # fail at build time, not deep inside a model, on a bad parameter
    return factory
