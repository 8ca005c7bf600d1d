"""Neuron families by name: the `neuron` config group resolves here.

`build_neuron` returns a factory so a model can create one neuron per layer and still pass per-layer
settings (the attention neuron's threshold, the head spike's Norm, a layer's channels, T for PSN) without
knowing the family.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from spikesweep.spiking.neurons.block_alif import build_block_alif
from spikesweep.spiking.neurons.gac import build_gac_lif
from spikesweep.spiking.neurons.lif import auto_backend, build_clif, build_if, build_lif, build_osr, build_plif
from spikesweep.spiking.neurons.multispike import MultiSpike
from spikesweep.spiking.neurons.psn import build_masked_psn, build_psn, build_sliding_psn

NeuronFactory = Callable[..., nn.Module]

NEURONS: dict[str, Callable[..., nn.Module]] = {
    "if": build_if,
    "lif": build_lif,
    "plif": build_plif,
    "clif": build_clif,
    "osr": build_osr,
    "block_alif": build_block_alif,
    "gac_lif": build_gac_lif,
    "psn": build_psn,
    "sliding_psn": build_sliding_psn,
    "masked_psn": build_masked_psn,
    "multispike": MultiSpike,
}
# Keys a model may pass to any neuron; a family that has no use for one ignores it.
OPTIONAL_OVERRIDES = {"time_steps", "channels", "norm_value"}


def neuron_names() -> list[str]:
    return sorted(NEURONS)


def _accepts(builder: Callable[..., nn.Module]) -> set[str]:
    return set(inspect.signature(builder).parameters)


def build_neuron(
    cfg: Mapping[str, Any], surrogate: Any, time_steps: int | None = None, device: Any = None
) -> NeuronFactory:
    """Return `factory(**overrides) -> nn.Module` for the neuron described by `cfg` ({name, backend, **params}).

    `time_steps` (the dataset's T) reaches the families that need it when built (PSN, masked PSN).
    `device`, where the caller knows it, lets `backend: auto` choose for it rather than for torch's default.
    """
    params = dict(cfg)
    name = params.pop("name")
    if name not in NEURONS:
        raise ValueError(f"unknown neuron '{name}'; valid: {', '.join(neuron_names())}")
    builder = NEURONS[name]
    if params.get("backend") == "auto" and "backend" in _accepts(builder):
        params["backend"] = auto_backend(surrogate, device)
    if params.get("backend", "torch") != "torch" and "backend" not in _accepts(builder):
        raise ValueError(f"neuron '{name}' has only the torch backend; backend={params['backend']} needs if or lif")
    if getattr(surrogate, "integer", False) and name != "multispike":
        raise ValueError(
            f"neuron '{name}' emits binary spikes but the surrogate is for integer spikes; "
            "use a binary surrogate (atan, sigmoid, rectangle, triangle, ...)"
        )
    accepted = _accepts(builder) - {"surrogate"}
    unknown = set(params) - accepted - OPTIONAL_OVERRIDES
    if unknown:
        raise ValueError(f"neuron '{name}': unknown parameter(s) {sorted(unknown)}; valid: {sorted(accepted)}")

    defaults = {"time_steps": time_steps} if time_steps is not None else {}

    def factory(**overrides: Any) -> nn.Module:
        kwargs = {**defaults, **params, **overrides}
        kwargs = {k: v for k, v in kwargs.items() if k in accepted or k not in OPTIONAL_OVERRIDES}
        try:
            return builder(surrogate=surrogate, **kwargs)
        except TypeError as err:
            raise ValueError(f"neuron '{name}': bad parameters ({err})") from err

    return factory
