"""Training paradigms beyond plain BPTT, chosen by the `method` config group.

A method is an object the engine consults at every training step (`TrainingMethod` in
spikesweep/protocols.py): `attach(model, device)` once, then `loss(x, logits, loss, target)` returns the
loss to minimise; the optional hooks (`OwnsBackward`, `EditsGradients`, `RunsAfterFit`) are declared
there too. `bptt` is the absence of one.
"""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from spikesweep.registry import Registry

# Each method file registers its builders `(kind, model_cfg, neuron, meta, **params) -> method`.
METHODS = Registry("method", "spikesweep.methods")


@METHODS.register("bptt")
def _plain_bptt(kind: str, model_cfg: Any, neuron: Any, meta: Any) -> None:
    """Plain BPTT is the absence of a method: the engine's own step."""
    return None


def method_names() -> list[str]:
    return METHODS.names()


def build_method(cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], neuron: Callable[..., nn.Module], meta: Any):
    """The method described by a `method` config node ({name, **params}); None for plain BPTT."""
    params = dict(cfg)
    name = params.pop("name")
    builder = METHODS.get(name)
    try:
        return builder(kind=name, model_cfg=model_cfg, neuron=neuron, meta=meta, **params)
    except TypeError as err:
        raise ValueError(f"method '{name}': bad parameters {sorted(params)} ({err})") from err
