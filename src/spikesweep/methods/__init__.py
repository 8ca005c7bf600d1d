"""Training paradigms beyond plain BPTT, chosen by the `method` config group.

A method is an object the engine consults at every training step (`TrainingMethod` in
spikesweep/protocols.py): `attach(model, device)` once, then `loss(x, logits, loss, target)` returns the
loss to minimise; the optional hooks (`OwnsBackward`, `EditsGradients`, `RunsAfterFit`) are declared
there too. `bptt` is the absence of one.
"""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from spikesweep.methods.distill import build_distillation
from spikesweep.methods.online import build_online
from spikesweep.methods.qat import build_qat
from spikesweep.methods.stdbp import STDBP_METHODS

METHODS: dict[str, Callable[..., Any]] = {
    "distill_response": build_distillation,
    "distill_feature": build_distillation,
    "online": build_online,
    "qat": build_qat,
    **STDBP_METHODS,
}


def method_names() -> list[str]:
    return sorted([*METHODS, "bptt"])


def build_method(cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], neuron: Callable[..., nn.Module], meta: Any):
    """The method described by a `method` config node ({name, **params}); None for plain BPTT."""
    params = dict(cfg)
    name = params.pop("name")
    if name == "bptt":
        return None
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; valid: {', '.join(method_names())}")
    try:
        return METHODS[name](kind=name, model_cfg=model_cfg, neuron=neuron, meta=meta, **params)
    except TypeError as err:
        raise ValueError(f"method '{name}': bad parameters {sorted(params)} ({err})") from err
